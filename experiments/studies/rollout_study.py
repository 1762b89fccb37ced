"""Experiment (not a test): rollout stability of autoregressive FNOs under five training recipes,
each from its YAML config in experiments/configs (the same epochs, data and network per dataset):

  plain        burgers_fno.yaml              one-step training
  unrolled     burgers_fno_unrolled.yaml     4 steps unrolled, gradients through all of them
  pushforward  burgers_fno_pushforward.yaml  k < 4 gradient-free steps, then one trained step
  jacobian     burgers_fno_jacobian.yaml     one-step + global Jacobian penalty (λ = 0.01)
  jaws         burgers_fno_jaws.yaml         σ head, Gaussian NLL, 1/σ²-weighted Jacobian (λ = 0.01)

on three datasets (``--datasets``):

  burgers      1-D viscous Burgers, level medium (ν = 0.01, 1024 points, snapshots every 0.02, 100 steps)
  ns-periodic  2-D vorticity, periodic level easy (ν = 1e-3) at 32² after a warm-up of 10 time units
               (the developed flow; snapshots every 1.0, 50 steps)
  channel      2-D channel flow past one cylinder, 128×32 cells, trained at Re = 1000 and tested at
               Re = 1000 and at the out-of-distribution Re = 1500 (velocity, snapshots every 0.2, 40 steps)

The 2-D runs use the Burgers configs with the dataset's files, network size, batch and run folder
replaced (the derived configs are written to runs/<dataset>/configs/ for inspection). Training
horizons are 1–4 steps; every test trajectory is rolled out over its whole stored horizon
(10–100× longer) with `pdekit evaluate --rollout`'s suite.

    python -m experiments.studies.rollout_study [--datasets burgers,ns-periodic,channel] [--methods ...]
        [--train N] [--test N] [--epochs N] [--jacobian-weight λ] [--out folder]
"""
from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from experiments.common import (
    CONFIGS,
    derive_config,
    fit,
    make_data,
    print_table,
    pyplot,
    refuse,
    save_figure,
    write_json,
)

METHODS = {"plain": "burgers_fno", "unrolled": "burgers_fno_unrolled", "pushforward": "burgers_fno_pushforward",
           "jacobian": "burgers_fno_jacobian", "jaws": "burgers_fno_jaws"}
CHANNEL = {"base": "easy-easy", "resolution": 32}  # one cylinder, 128 x 32 cells


@dataclass
class Dataset:
    title: str
    generate: list[str]  # datagen arguments before --n/--seed/--out
    train: int
    test: int
    epochs: int
    network_kwargs: dict | None = None  # None: the Burgers configs' network
    data: dict = field(default_factory=dict)  # data.init_args replaced
    tests: dict = field(default_factory=lambda: {"test": []})  # test file stem -> datagen arguments replaced
    columns: tuple = ()  # extra suite means shown in the table
    specs: dict = field(default_factory=dict)  # level spec files written to the dataset's folder


DATASETS = {
    "burgers": Dataset("Burgers medium (nu = 0.01, 1024 points), rollout over 100 steps (time 2.0)",
                       ["burgers", "--level", "medium"], 48, 16, 6,
                       columns=("shock_position_error", "total_variation_drift")),
    "ns-periodic": Dataset("periodic Navier-Stokes easy (nu = 1e-3, 32^2, vorticity, after a warm-up of 10), "
                           "rollout over 50 steps (time 50)",
                           ["navier-stokes", "--family", "periodic", "--spec", "developed.yaml"], 32, 8, 15,
                           {"n_modes": [12, 12], "hidden_channels": 24, "n_layers": 4}, {"batch_size": 16},
                           columns=("energy_drift", "enstrophy_drift"),
                           specs={"developed.yaml": {"base": "easy", "warmup": 10.0, "resolution": 32}}),
    "channel": Dataset("channel past a cylinder (128x32, velocity), trained at Re 1000; rollout over 40 steps (time 8)",
                       ["navier-stokes", "--family", "obstacles", "--spec", "re1000.yaml"], 24, 8, 5,
                       {"n_modes": [24, 12], "hidden_channels": 24, "n_layers": 4},
                       {"batch_size": 16, "inputs": ["velocity"], "target": ["velocity"]},
                       {"test_re1000": [], "test_re1500": ["--spec", "re1500.yaml"]},
                       columns=("energy_drift", "divergence_drift"),
                       specs={f"re{re}.yaml": {**CHANNEL, "reynolds": re} for re in (1000, 1500)}),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="burgers,ns-periodic,channel")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--train", type=int, default=None, help="training trajectories (default: per dataset)")
    parser.add_argument("--test", type=int, default=None, help="test trajectories per test file (default: per dataset)")
    parser.add_argument("--epochs", type=int, default=None, help="default: per dataset")
    parser.add_argument("--jacobian-weight", type=float, default=None,
                        help="λ of the jacobian and jaws methods (default: the configs' 0.01)")
    parser.add_argument("--base", default=".", help="the runs/ folder is made here (data, configs, checkpoints, logs)")
    parser.add_argument("--out", default="experiments/results/rollout_study")
    args = parser.parse_args()
    unknown = sorted(set(args.datasets.split(",")) - set(DATASETS))
    if unknown:
        refuse(f"--datasets: unknown {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    unknown = sorted(set(args.methods.split(",")) - set(METHODS))
    if unknown:
        refuse(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if not Path(args.base).is_dir():
        refuse(f"--base {args.base} is not a folder")
    out = Path(args.out).resolve()
    os.chdir(args.base)
    for name in args.datasets.split(","):
        study(name, DATASETS[name], args.methods.split(","), args, out / name)


def study(name, dataset: Dataset, methods, args, out):
    from pdekit.learning.evaluation.fields import evaluate

    work = Path("runs").resolve() / name
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    n_train, n_test = args.train or dataset.train, args.test or dataset.test
    epochs = args.epochs or dataset.epochs
    test_files = _make_data(dataset, work, n_train, n_test)
    rows, curves, spectra = [], {}, {}
    for method in methods:
        config = _config(METHODS[method], name, dataset, work, args.jacobian_weight)
        run = work / METHODS[method]
        shutil.rmtree(run / "checkpoints", ignore_errors=True)  # else Lightning writes last-v1.ckpt beside an old last.ckpt
        seconds = _fit(config, epochs)
        for stem, path in test_files.items():
            metrics = evaluate(run / "checkpoints/last.ckpt", [path], out / method / stem, rollout=True)
            suite = metrics["rollout_suite"]["overall"]
            rel = np.asarray(suite["rel_l2_vs_step"])
            marks = sorted({9, len(rel) // 2 - 1, len(rel) - 1})
            label = method if args.jacobian_weight is None or method not in ("jacobian", "jaws") else \
                f"{method} λ={args.jacobian_weight:g}"
            row = {"method": label, **({"test": stem} if len(test_files) > 1 else {}), "one-step rel L2": rel[0],
                   **{f"rel L2 step {j + 1}": rel[j] for j in marks},
                   "time corr < 0.9": suite["time_until_corr_0.9_mean"],
                   "late spectral error": suite["late_spectral_error_mean"],
                   **{key.replace("_", " "): suite.get(f"{key}_mean", float("nan")) for key in dataset.columns},
                   "blown up": suite["blown_up"], "train s": seconds}
            rows.append(row)
            curves[(method, stem)] = suite["correlation_vs_step"]
            spectra[(method, stem)] = _late_spectrum(run / "checkpoints/last.ckpt", path)
        print(f"{name} {method}: trained in {seconds:.0f} s", flush=True)
    print_table(f"{dataset.title}; {n_train} training / {n_test} test trajectories, {epochs} epochs", rows)
    write_json(out / "results.json", {"rows": rows, "correlation": {f"{m}/{s}": c for (m, s), c in curves.items()}})
    _figure(name, curves, spectra, out / f"rollout_study_{name}.png")
    print(f"wrote {out}/results.json and {out}/rollout_study_{name}.png")


def _make_data(dataset: Dataset, work: Path, n_train: int, n_test: int) -> dict:
    """Generate the training file and the test files (new seeds) unless they exist."""
    for name, spec in dataset.specs.items():
        (work / name).write_text(yaml.safe_dump(spec))
    files = {"train": (work / "train.h5", n_train, 0, [])}
    files.update({stem: (work / f"{stem}.h5", n_test, 100000, extra) for stem, extra in dataset.tests.items()})
    for path, n, seed, extra in files.values():
        arguments = [str(work / a) if a.endswith(".yaml") else a for a in _replace(dataset.generate, extra)]
        make_data(path, [*arguments, "--n", n, "--seed", seed, "--workers", 2])
    return {stem: work / f"{stem}.h5" for stem in dataset.tests}


def _replace(arguments, extra):
    """``arguments`` with each ``--flag value`` pair of ``extra`` substituted."""
    arguments = list(arguments)
    for flag, value in zip(extra[::2], extra[1::2]):
        arguments[arguments.index(flag) + 1] = value
    return arguments


def _config(config_name, dataset_name, dataset: Dataset, work: Path, jacobian_weight=None) -> Path:
    """The method's Burgers config with this dataset's files, network, batch and run folder."""
    changes = {"data": {"init_args": {"files": [str(work / "train.h5")], **dataset.data}}}
    base = yaml.safe_load((CONFIGS / f"{config_name}.yaml").read_text())
    if jacobian_weight is not None and "jacobian_weight" in base["model"]["init_args"]:
        changes["model"] = {"init_args": {"jacobian_weight": jacobian_weight}}
    if dataset.network_kwargs is not None:
        changes.setdefault("model", {"init_args": {}})["init_args"]["network_kwargs"] = dataset.network_kwargs
    return derive_config(config_name, work / config_name, changes,
                         note=f"{dataset_name}: built on experiments/configs/{config_name}.yaml by rollout_study")


def _fit(config: Path, epochs: int) -> float:
    return fit(config, "--trainer.max_epochs", epochs, "--trainer.enable_progress_bar", "false")


def _late_spectrum(ckpt, test_file):
    """Truth and prediction spectra of test trajectory 0 at the last stored step."""
    from pdekit.learning.checkpoints import load_task
    from pdekit.learning.datamodules import TimeSeriesWindows
    from pdekit.learning.evaluation import rollout_metrics as rm
    from pdekit.learning.evaluation.rollout import roll_out

    task, info = load_task(ckpt)
    windows = TimeSeriesWindows(test_file, info["data"]["inputs"], 1, 1)
    truth = windows.snapshots(0, 0, windows.steps)
    predicted = roll_out(task, truth[:1].flatten(0, 1)[None], windows.mask(0)[None], windows.steps - 1,
                         100 * float(truth.abs().max()))
    return (rm.energy_spectrum(truth[-1].double().numpy(), windows.dim),
            rm.energy_spectrum(np.nan_to_num(predicted[-1].double().numpy()), windows.dim))


def _figure(name, curves, spectra, path):
    plt = pyplot()

    stems = list(dict.fromkeys(stem for _, stem in curves))
    fig, axes = plt.subplots(1, len(stems) + 1, figsize=(5 * (len(stems) + 1), 3.8), layout="constrained")
    for ax, stem in zip(axes, stems):
        for (method, s), curve in curves.items():
            if s == stem:
                ax.plot(np.arange(1, len(curve) + 1), curve, label=method)
        ax.axhline(0.9, color="grey", lw=0.6, ls=":")
        ax.set(xlabel="rollout step", ylabel="Pearson correlation with the truth",
               title=f"{name} {stem}: correlation vs step (test mean)")
    stem = stems[-1]
    truth = next(v for (m, s), v in spectra.items() if s == stem)[0]
    k = np.arange(1, len(truth))
    axes[-1].loglog(k, truth[1:], color="k", lw=2, label="truth")
    for (method, s), (_, predicted) in spectra.items():
        if s == stem:
            axes[-1].loglog(k, np.maximum(predicted[1:], 1e-30), label=method, lw=1)
    axes[-1].set(xlabel="wavenumber k", ylabel="E(k)", title=f"{stem}: spectrum at the last step, trajectory 0",
                 ylim=(max(float(truth[1:].min()), 1e-16), None))
    for ax in axes:
        ax.legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
