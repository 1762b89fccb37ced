"""Experiment (not a test): NPSolver's headline at CPU scale — is PCG supervision without labels as
accurate as supervised training, better than the residual (PINN-style) loss, and is the stop-gradient
essential?

The same BA-Transolver (experiments/configs/npsolver_small.yaml: 4 layers, width 64, 4 heads,
slices [16, 4]) trained for the same number of steps on the `medium` and `hard` Poisson levels at
64² (seed 0, 800 samples each) with

  (a) pcg           PCG supervision, K = 40 Jacobi-PCG steps, stop-gradient (the method)
  (b) residual      RMSE of b − A p (PINN-style)
  (c) supervised    RMSE against the file's labels u
  (d) pcg-backprop  (a) with stop_gradient: false (gradients through the K PCG steps)
  (e) pcg-amg       (a) with AMG as the inner preconditioner (pdekit's extension; still no labels)

evaluated (final weights, no selection on test data) on held-out files of new seeds, hence new
geometries: 64² (seed 100000, 50 per level), 128² (seed 200000, 20 per level: resolution transfer).
A 3-D row trains (a) and (c) on the medium level at 16³ (400 samples) and tests at 16³ and 32³.
Writes results.json, learning_curves.png (validation relative L2 vs step) under --out.

    python -m experiments.studies.npsolver_study [--steps 600] [--arms pcg,residual,supervised,pcg-backprop,pcg-amg]
        [--arms-3d pcg,supervised] [--steps-3d 600]
"""
from __future__ import annotations

import argparse
import csv
import math
import shutil
import time
from pathlib import Path

from experiments.common import (
    FitFailed,
    derive_config,
    enter_base,
    fit,
    last_checkpoint,
    make_data,
    metrics_csv,
    parse_list,
    print_table,
    pyplot,
    save_figure,
    write_json,
)

ARMS = {"pcg": {"loss": "pcg"}, "residual": {"loss": "residual"}, "supervised": {"loss": "supervised"},
        "pcg-backprop": {"loss": "pcg", "stop_gradient": False}, "pcg-amg": {"loss": "pcg", "inner": "amg"}}
DATA_2D = [("medium_64", "medium", 64, 800, 0, 2), ("hard_64", "hard", 64, 800, 0, 2),
           ("medium_64_test", "medium", 64, 50, 100000, 2), ("hard_64_test", "hard", 64, 50, 100000, 2),
           ("medium_128_test", "medium", 128, 20, 200000, 2), ("hard_128_test", "hard", 128, 20, 200000, 2)]
DATA_3D = [("medium_3d_16", "medium", 16, 400, 0, 3), ("medium_3d_16_test", "medium", 16, 30, 100000, 3),
           ("medium_3d_32_test", "medium", 32, 10, 200000, 3)]


def make_files(data: Path, specs) -> None:
    for name, level, n, count, seed, dim in specs:
        make_data(data / f"{name}.h5", ["poisson", "--level", level, "--resolution", n, "--n", count, "--seed", seed,
                                        "--dim", dim])


def train(name, overrides, files, steps, run: Path, data_overrides: dict | None = None) -> dict:
    shutil.rmtree(run, ignore_errors=True)
    config = derive_config("npsolver_small", run, {
        "trainer": {"max_epochs": 1000, "max_steps": steps, "val_check_interval": 50, "check_val_every_n_epoch": None,
                    "limit_val_batches": 5, "enable_progress_bar": False, "log_every_n_steps": 25},
        "model": {"init_args": overrides},
        "data": {"init_args": {"files": [str(f) for f in files], **(data_overrides or {})}}},
        note=f"NPSolver study arm {name}")
    start = time.perf_counter()
    try:
        fit(config)
        code = 0
    except FitFailed as err:  # an arm may diverge: recorded, the others still run
        print(f"{name}: {err}", flush=True)
        code = 1
    seconds = time.perf_counter() - start
    curve = []
    metrics = metrics_csv(run)
    if metrics.exists():
        with metrics.open() as handle:
            for row in csv.DictReader(handle):
                if row.get("val/rel_l2"):
                    curve.append((int(row["step"]), float(row["val/rel_l2"])))
    finite = [v for _, v in curve if math.isfinite(v)]
    # stable: finished, and the last validation error is not far above the best one seen
    stable = code == 0 and bool(finite) and len(finite) == len(curve) and finite[-1] <= 1.5 * min(finite)
    return {"code": code, "seconds": seconds, "curve": curve, "stable": stable, "checkpoint": last_checkpoint(run)}


def evaluate_files(ckpt: Path, files: list[Path], out: Path) -> dict:
    from pdekit.learning.evaluation.fields import evaluate

    metrics = evaluate(ckpt, files, out, figures=4)
    return metrics["per_level"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--steps-3d", type=int, default=600)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--arms-3d", default="pcg,supervised")
    parser.add_argument("--base", default=".", help="runs/ is made here (data, checkpoints, logs)")
    parser.add_argument("--out", default="experiments/results/npsolver_study")
    args = parser.parse_args()
    out, data = enter_base(args, "runs/npsolver/data")
    make_files(data, DATA_2D + (DATA_3D if args.arms_3d else []))
    train_files = [data / "medium_64.h5", data / "hard_64.h5"]
    rows, curves = [], {}
    for arm in parse_list(args.arms, "--arms", choices=list(ARMS)):
        result = train(arm, ARMS[arm], train_files, args.steps, Path("runs/npsolver_study") / arm)
        curves[arm] = result["curve"]
        row = {"arm": arm, "train s": result["seconds"], "stable": result["stable"]}
        if result["code"] == 0:
            at64 = evaluate_files(result["checkpoint"], [data / "medium_64_test.h5", data / "hard_64_test.h5"],
                                  out / arm / "64")
            at128 = evaluate_files(result["checkpoint"], [data / "medium_128_test.h5", data / "hard_128_test.h5"],
                                   out / arm / "128")
            for level in ("medium", "hard"):
                row[f"{level} rel L2"] = at64[level]["rel_l2_mean"]
                row[f"{level} rel res"] = at64[level]["rel_residual_mean"]
            for level in ("medium", "hard"):
                row[f"{level} rel L2 @128"] = at128[level]["rel_l2_mean"]
        rows.append(row)
        print(row, flush=True)
    rows_3d = []
    for arm in parse_list(args.arms_3d, "--arms-3d", choices=list(ARMS)):
        result = train(f"{arm}-3d", ARMS[arm], [data / "medium_3d_16.h5"], args.steps_3d,
                       Path("runs/npsolver_study") / f"{arm}-3d")
        curves[f"{arm} (3-D)"] = result["curve"]
        row = {"arm": arm, "train s": result["seconds"], "stable": result["stable"]}
        if result["code"] == 0:
            for size in (16, 32):
                level = evaluate_files(result["checkpoint"], [data / f"medium_3d_{size}_test.h5"],
                                       out / f"{arm}-3d" / str(size))["medium"]
                row[f"{size}^3 rel L2"] = level["rel_l2_mean"]
                row[f"{size}^3 rel res"] = level["rel_residual_mean"]
        rows_3d.append(row)
        print(row, flush=True)
    rows, rows_3d, curves = merged(out / "results.json", args.steps, rows, rows_3d, curves)
    if rows:
        print_table(f"NPSolver study: BA-Transolver 4x64, {args.steps} steps of batch 8 on medium+hard 64^2; "
                    "held-out 64^2 (new seeds) and 128^2 (resolution transfer)", rows)
    if rows_3d:
        print_table(f"3-D: medium level, trained at 16^3 ({args.steps_3d} steps), tested at 16^3 and 32^3", rows_3d)
    write_json(out / "results.json", {"steps": args.steps, "rows": rows, "rows_3d": rows_3d, "curves": curves})
    learning_curves(curves, out / "learning_curves.png")


def merged(path: Path, steps: int, rows, rows_3d, curves):
    """Arms run now replace the same arms of an earlier run with the same step count (so an arm can
    be added or re-run alone); the others are kept."""
    import json

    if not path.exists():
        return rows, rows_3d, curves
    old = json.loads(path.read_text())
    if old.get("steps") != steps:
        return rows, rows_3d, curves
    keep = lambda previous, new: [r for r in previous if r["arm"] not in {n["arm"] for n in new}] + new  # noqa: E731
    return keep(old["rows"], rows), keep(old["rows_3d"], rows_3d), {**old["curves"], **curves}


def learning_curves(curves: dict, path: Path) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for name, curve in curves.items():
        if curve:
            steps, values = zip(*curve)
            ax.plot(steps, values, marker="o", markersize=3, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("training step (batch 8)")
    ax.set_ylabel("relative L2 on 40 validation samples")
    ax.set_title("NPSolver: PCG supervision vs residual vs labels\n(2-D: medium level at 64²; 3-D: medium at 16³)",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save_figure(fig, path)
    print(f"figure: {path}")


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
