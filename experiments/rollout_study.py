"""Experiment (not a test): rollout stability of an autoregressive 1-D FNO on viscous Burgers
(level `medium`, ν = 0.01, 1024 points, snapshots every 0.02) under five training recipes, each
from its YAML config in experiments/configs (the same epochs, data and network):

  plain        burgers_fno.yaml              one-step training
  unrolled     burgers_fno_unrolled.yaml     4 steps unrolled, gradients through all of them
  pushforward  burgers_fno_pushforward.yaml  k < 4 gradient-free steps, then one trained step
  jacobian     burgers_fno_jacobian.yaml     one-step + global Jacobian penalty (λ = 0.01)
  jaws         burgers_fno_jaws.yaml         σ head, Gaussian NLL, 1/σ²-weighted Jacobian (λ = 0.01)

Training horizons are 1–4 steps; every test trajectory is rolled out over its whole stored 100
steps (25–100× longer) with `pdekit evaluate --rollout`'s suite.

    python experiments/rollout_study.py [--train 48] [--test 16] [--epochs 6] [--out folder]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from results_io import print_table, save_figure, write_json  # experiments/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"plain": "burgers_fno", "unrolled": "burgers_fno_unrolled", "pushforward": "burgers_fno_pushforward",
           "jacobian": "burgers_fno_jacobian", "jaws": "burgers_fno_jaws"}


def main():
    import datagen.cli
    import pdekit.cli
    from pdekit.evaluate import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=48)
    parser.add_argument("--test", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--base", default=".", help="the configs' runs/ folder is made here (data, checkpoints, logs)")
    parser.add_argument("--out", default="experiments/results/rollout_study")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    os.chdir(args.base)  # the configs name runs/... relative to the working folder
    work = Path("runs").resolve()
    (work / "burgers").mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    data = {"train": (work / "burgers/train.h5", args.train, 0), "test": (work / "burgers/test.h5", args.test, 100000)}
    for path, n, seed in data.values():
        if not path.exists():
            assert datagen.cli.main(["burgers", "--level", "medium", "--n", str(n), "--seed", str(seed),
                                     "--out", str(path), "--quiet"]) == 0
    rows, curves, spectra = [], {}, {}
    for method in args.methods.split(","):
        name = METHODS[method]
        run = work / name
        overrides = ["--trainer.max_epochs", str(args.epochs), "--trainer.enable_progress_bar", "false"]
        shutil.rmtree(run / "checkpoints", ignore_errors=True)  # else Lightning writes last-v1.ckpt beside an old last.ckpt
        t0 = time.perf_counter()
        sys.argv = ["pdekit"]
        code = pdekit.cli.main(["fit", "--config", str(ROOT / f"experiments/configs/{name}.yaml"), *overrides])
        seconds = time.perf_counter() - t0
        if code != 0:
            raise SystemExit(f"{name}: pdekit fit failed")
        metrics = evaluate(run / "checkpoints/last.ckpt", [data["test"][0]], out / method, rollout=True)
        suite = metrics["rollout_suite"]["overall"]
        rel = np.asarray(suite["rel_l2_vs_step"])
        rows.append({"method": method, "one-step rel L2": rel[0], "rel L2 step 10": rel[9], "rel L2 step 50": rel[49],
                     "rel L2 step 100": rel[-1], "time corr < 0.9": suite["time_until_corr_0.9_mean"],
                     "late spectral error": suite["late_spectral_error_mean"],
                     "shock position error": suite.get("shock_position_error_mean", float("nan")),
                     "TV drift": suite.get("total_variation_drift_mean", float("nan")),
                     "blown up": suite["blown_up"], "train s": seconds})
        curves[method] = suite["correlation_vs_step"]
        spectra[method] = _late_spectrum(run / "checkpoints/last.ckpt", data["test"][0])
        print(f"{method}: trained in {seconds:.0f} s", flush=True)
    print_table(f"Burgers medium (nu = 0.01, 1024 points), {args.train} training / {args.test} test trajectories, "
                f"{args.epochs} epochs; rollout over 100 steps (time 2.0)", rows)
    write_json(out / "results.json", {"rows": rows, "correlation": curves})
    _figure(curves, spectra, out / "rollout_study.png")
    print(f"wrote {out}/results.json and {out}/rollout_study.png")


def _late_spectrum(ckpt, test_file):
    """Truth and prediction spectra of test trajectory 0 at the last stored step."""
    import torch

    from pdekit import rollout_metrics as rm
    from pdekit.checkpoints import load_task
    from pdekit.datamodule import TimeSeriesWindows
    from pdekit.rollout_eval import roll_out

    task, _ = load_task(ckpt)
    windows = TimeSeriesWindows(test_file, ["u"], 1, 1)
    truth = windows.snapshots(0, 0, windows.steps)
    predicted = roll_out(task, truth[:1].flatten(0, 1)[None], windows.mask(0)[None], windows.steps - 1,
                         100 * float(truth.abs().max()))
    with torch.no_grad():
        return rm.energy_spectrum(truth[-1].double().numpy(), 1), rm.energy_spectrum(
            np.nan_to_num(predicted[-1].double().numpy()), 1)


def _figure(curves, spectra, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for method, curve in curves.items():
        axes[0].plot(np.arange(1, len(curve) + 1), curve, label=method)
    axes[0].axhline(0.9, color="grey", lw=0.6, ls=":")
    axes[0].set(xlabel="rollout step (dt = 0.02)", ylabel="Pearson correlation with the truth",
                title="correlation vs step (mean over test trajectories)")
    truth = next(iter(spectra.values()))[0]
    k = np.arange(1, len(truth))
    axes[1].loglog(k, truth[1:], color="k", lw=2, label="truth")
    for method, (_, predicted) in spectra.items():
        axes[1].loglog(k, np.maximum(predicted[1:], 1e-30), label=method, lw=1)
    axes[1].set(xlabel="wavenumber k", ylabel="E(k)", title="spectrum at step 100 (t = 2), trajectory 0",
                ylim=(1e-16, None))
    for ax in axes:
        ax.legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
