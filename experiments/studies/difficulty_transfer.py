"""Experiment (not a test): how to spend classical-solver compute across difficulty levels
(the question of arXiv 2512.00564, "Pre-Generating Multi-Difficulty PDE Data for Few-Shot Neural
PDE Solvers": mixing in easier data reached the same error on hard problems for up to 8.9× less
generation compute, and ≥ 10% hard samples sufficed).

Two studies (``--pde``):

* ``poisson``: 64², easy (or ``--easier medium``) vs hard.  Pools are generated once with an
  iterative solver (``--solver cg`` by default: plain CG, whose cost grows with difficulty as in
  the usual data pipelines); the model is an FNO (experiments/configs/difficulty_transfer_fno.yaml),
  the error the relative L2 on 100 held-out hard samples.
* ``channel``: the Navier–Stokes channel's geometry axis at Re 100, 128x32 cells, 3 time units
  after a 1-unit warm-up (15 snapshots): one circle (easy-easy) vs 5-8 circles/rectangles/polygons
  (hard-easy); cost = each trajectory's recorded wall time; the model an autoregressive FNO on the
  velocity (experiments/configs/difficulty_transfer_channel.yaml), the error the mean relative L2
  of full rollouts of 8 held-out several-obstacle trajectories.

For each generation budget and each hard fraction of it, the training set takes hard samples worth
fraction × budget and easier samples worth the rest (counts from the pools' mean recorded cost per
sample: ``datagen cost`` prints it), the same model is trained with the same recipe (the same
number of Adam steps for every set) for several seeds and evaluated, final model, on held-out
**hard** samples.

    python -m experiments.studies.difficulty_transfer [--pde poisson|channel] [--budgets 5,12,25]
        [--mixes 1,0.5,0.25,0.1,0] [--seeds 0,1] [--solver cg] [--steps N] [--easier LEVEL]

Budgets are given in hard-sample equivalents (5 = the recorded cost of 5 hard samples) and
reported in seconds.  Output: a table (mean ± std over seeds), the paper's plot (hard-test error
vs generation compute, one curve per mix) and the compute saving at equal error: for each mix,
the all-hard budget that reaches the mix's error (log-log interpolation along the all-hard
curve) divided by the mix's budget, per seed.
"""
from __future__ import annotations

import argparse
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.common import (
    CONFIGS,
    derive_config,
    enter_base,
    fit,
    last_checkpoint,
    make_data,
    parse_list,
    print_table,
    refuse,
    save_figure,
    write_json,
)
from pdekit.files.figures import pyplot


@dataclass(frozen=True)
class Study:
    """What differs between the two studies: levels, pools, model recipe and error measure."""
    pde: str  # "poisson" | "channel"
    hard: str
    easier: str  # the default easier level
    config: Path
    metric: str  # the key of `pdekit evaluate`'s overall metrics reported as the hard-test error
    resolution: int
    steps: int
    test: int  # held-out hard samples (trajectories)
    pilot: int  # easier samples generated first to measure the cost ratio

    def datagen_argv(self, level: str, n: int, seed: int, resolution: int, solver: str, folder: Path,
                     horizon=None) -> list[str]:
        if self.pde == "poisson":
            return ["poisson", "--level", level, "--n", str(n), "--resolution", str(resolution), "--seed", str(seed),
                    "--solver", solver]
        spec = folder / f"{level}.yaml"  # the level with a horizon that fits a CPU
        t_end, interval, warmup = horizon or CHANNEL_HORIZON
        spec.write_text(f"base: {level}\nt_end: {t_end}\ninterval: {interval}\nwarmup: {warmup}\n")
        return ["navier-stokes", "--family", "obstacles", "--spec", str(spec), "--n", str(n),
                "--resolution", str(resolution), "--seed", str(seed)]


CHANNEL_HORIZON = (3.0, 0.2, 1.0)  # t_end, snapshot interval, warm-up (time units of H / U_max)
STUDIES = {
    # Poisson 64²: easy (full box, a = 1) or medium vs hard (obstacles, contrast 1e3, Neumann faces)
    "poisson": Study("poisson", "hard", "easy", CONFIGS / "difficulty_transfer_fno.yaml", "rel_l2_mean", 64,
                     600, 100, 64),
    # channel flow at Re 100, 128x32: one circle vs 5-8 circles/rectangles/polygons (the geometry axis)
    "channel": Study("channel", "hard-easy", "easy-easy", CONFIGS / "difficulty_transfer_channel.yaml",
                     "rollout_rel_l2_mean", 32, 300, 8, 8),
}


def make_pools(study: Study, folder: Path, budget: float, easier: str, solver: str, resolution: int,
               tests: int | None = None, pilot: int | None = None, horizon=None) -> dict:
    """Pools for budgets up to ``budget`` hard-sample equivalents at every mix: hard first, then an
    easier pool sized from the measured cost ratio (regenerated larger when an earlier, smaller one is
    there: samples are pure functions of their seed, so the old pool is a prefix of the new)."""
    from datagen.cost import sample_costs

    paths = {"easier": folder / f"pool_{easier}.h5", "hard": folder / "pool_hard.h5", "test": folder / "test_hard.h5"}

    def generate(name, level, n, seed, how):
        if paths[name].exists() and sample_costs(paths[name])[0].size >= n:
            return
        paths[name].unlink(missing_ok=True)  # a smaller pool of the same seeds: regenerated larger
        make_data(paths[name], study.datagen_argv(level, n, seed, resolution, how, folder, horizon))

    generate("hard", study.hard, int(budget * 1.25) + 10, 0, solver)
    generate("test", study.hard, tests or study.test, 1_000_000, "auto")  # the test set's cost is not budgeted
    generate("easier", easier, pilot or study.pilot, 0, solver)  # a pilot (or the existing pool) measures the cost ratio
    ratio = sample_costs(paths["hard"])[0].mean() / sample_costs(paths["easier"])[0].mean()
    generate("easier", easier, int(budget * ratio * 1.15) + 10, 0, solver)
    return paths


def train_and_test(study: Study, paths, counts, seed: int, steps: int, run: Path, out: Path) -> float:
    from pdekit.learning.evaluation.fields import evaluate

    shutil.rmtree(run, ignore_errors=True)
    config = derive_config(study.config, run, {
        "seed_everything": seed, "trainer": {"max_steps": steps},
        "data": {"init_args": {"files": [str(paths["easier"]), str(paths["hard"])], "counts": list(counts),
                               "seed": seed}}})
    fit(config)
    metrics = evaluate(last_checkpoint(run), [paths["test"]], out, figures=0)
    return float(metrics["overall"][study.metric])


def saving_factor(budgets, hard_errors, budget, error) -> float:
    """All-hard compute needed for ``error`` (log-log interpolation of the all-hard curve; NaN
    outside its range) over ``budget``."""
    b, e = np.log(np.asarray(budgets)), np.log(np.asarray(hard_errors))
    order = np.argsort(e)
    if not (e.min() <= math.log(error) <= e.max()):
        return float("nan")
    return float(math.exp(np.interp(math.log(error), e[order], b[order])) / budget)


def main():
    from datagen.cost import sample_costs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pde", default="poisson", choices=sorted(STUDIES),
                        help="poisson (easy vs hard, 64²) or channel (one vs several obstacles, 128x32)")
    parser.add_argument("--budgets", default="5,12,25", help="in hard-sample equivalents")
    parser.add_argument("--mixes", default="1,0.5,0.25,0.1,0", help="hard fraction of the budget")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps per training run (default per --pde)")
    parser.add_argument("--solver", default="cg", help="poisson: the pools' solver (its recorded cost is the budget)")
    parser.add_argument("--test", type=int, default=None, help="held-out hard samples (default per --pde: 100, 8)")
    parser.add_argument("--horizon", default=",".join(map(str, CHANNEL_HORIZON)),
                        help="channel: t_end,interval,warmup of each trajectory (default 3.0,0.2,1.0)")
    parser.add_argument("--pilot", type=int, default=None,
                        help="easier samples made first to measure the cost ratio (default per --pde: 64, 8)")
    parser.add_argument("--resolution", type=int, default=None, help="default per --pde: 64 (poisson), 32 (channel)")
    parser.add_argument("--easier", default=None, help="the easier level mixed with the hard one "
                                                       "(default: easy, or easy-easy for the channel)")
    parser.add_argument("--base", default=".", help="runs/difficulty_transfer[_channel]/ is made here")
    parser.add_argument("--out", default=None, help="default experiments/results/difficulty_transfer[_channel]")
    args = parser.parse_args()
    study = STUDIES[args.pde]
    suffix = "" if args.pde == "poisson" else f"_{args.pde}"
    args.steps = study.steps if args.steps is None else args.steps
    args.resolution = study.resolution if args.resolution is None else args.resolution
    if not Path(args.base).is_dir():
        refuse(f"--base {args.base} is not a folder")
    args.easier = args.easier or study.easier
    args.out = args.out or f"experiments/results/difficulty_transfer{suffix}"
    budgets = parse_list(args.budgets, "--budgets", float)
    mixes = parse_list(args.mixes, "--mixes", float)
    seeds = parse_list(args.seeds, "--seeds", int)
    if not (all(math.isfinite(b) and 0 < b <= 10_000 for b in budgets) and all(0 <= m <= 1 for m in mixes)
            and args.steps >= 1 and args.resolution >= 8):
        refuse("need budgets in (0, 10000], hard fractions in [0, 1], --steps >= 1 and --resolution >= 8")
    if any(v is not None and v < 1 for v in (args.test, args.pilot)):
        refuse(f"--test and --pilot must be >= 1, got {args.test} and {args.pilot}")
    horizon = parse_list(args.horizon, "--horizon", float)
    if len(horizon) != 3 or not (horizon[0] > 0 and 0 < horizon[1] <= horizon[0] and horizon[2] >= 0):
        refuse(f"--horizon must be t_end,interval,warmup with 0 < interval <= t_end and warmup >= 0, got {args.horizon}")
    out, folder = enter_base(args, f"runs/difficulty_transfer{suffix}")
    paths = make_pools(study, folder, max(budgets), args.easier, args.solver, args.resolution, args.test, args.pilot, horizon)
    cost = {name: float(sample_costs(paths[name])[0].mean()) for name in ("easier", "hard")}
    source = f"{args.solver} solves" if args.pde == "poisson" else "trajectory wall time"
    print(f"mean recorded cost per sample ({source}): {args.easier} {cost['easier']:.3g} s, hard "
          f"{cost['hard']:.3g} s ({cost['hard'] / cost['easier']:.1f}×)", flush=True)
    available = {name: int(sample_costs(paths[name])[0].size) for name in ("easier", "hard")}
    plan = {(budget, mix): (int(round((1 - mix) * budget * cost["hard"] / cost["easier"])), int(round(mix * budget)))
            for budget in budgets for mix in mixes}
    short = [(key, counts) for key, counts in plan.items()
             if counts[0] > available["easier"] or counts[1] > available["hard"]]
    if short:  # before any training: lower --budgets or delete the pools to regenerate them larger
        (budget, mix), counts = short[0]
        refuse(f"pools too small for budget {budget:g}, hard fraction {mix:g}: need {counts[0]} {args.easier} "
               f"and {counts[1]} hard samples, have {available['easier']} and {available['hard']}")
    rows, results = [], {}
    for budget in budgets:
        seconds = budget * cost["hard"]
        for mix in mixes:
            counts = plan[(budget, mix)]
            if sum(counts) == 0:
                continue
            errors = []
            for seed in seeds:
                start = time.perf_counter()
                errors.append(train_and_test(study, paths, counts, seed, args.steps, folder / "run", out / "last_eval"))
                print(f"budget {budget:g} ({seconds:.1f} s), hard {mix:.0%}: {counts[0]} {args.easier} + {counts[1]} hard, "
                      f"seed {seed}: hard-test rel L2 {errors[-1]:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
            results[(budget, mix)] = errors
            rows.append({"budget (hard samples)": budget, "budget s": seconds, "hard fraction": mix,
                         args.easier: counts[0], "hard": counts[1], "rel L2 mean": float(np.mean(errors)),
                         "rel L2 std": float(np.std(errors))})
    # compute saving at equal error, per seed, against the all-hard curve
    savings = []
    if 1.0 in mixes:
        for budget in budgets:
            for mix in mixes:
                if mix == 1.0 or (budget, mix) not in results:
                    continue
                factors = [saving_factor(budgets, [results[(b, 1.0)][k] for b in budgets], budget,
                                         results[(budget, mix)][k]) for k in range(len(seeds))]
                finite = [f for f in factors if math.isfinite(f)]
                savings.append({"budget (hard samples)": budget, "hard fraction": mix,
                                "saving × (mean)": float(np.mean(finite)) if finite else float("nan"),
                                "saving × (std)": float(np.std(finite)) if finite else float("nan"),
                                "seeds in range": f"{len(finite)}/{len(seeds)}"})
    what = (f"Poisson {args.resolution}², relative L2" if args.pde == "poisson" else
            f"channel {4 * args.resolution}x{args.resolution}, rollout relative L2")
    print_table(f"Difficulty transfer, {what} on held-out {study.hard} samples (mean ± std over seeds {args.seeds}), "
                f"FNO, {args.steps} Adam steps; budgets in recorded generation seconds", rows)
    print_table("Compute saving at equal hard-test error vs all-hard (>1: the mix needs less generation compute; "
                "NaN: outside the all-hard curve's range)", savings)
    write_json(out / "results.json", {"rows": rows, "savings": savings, "cost_per_sample": cost, "solver": args.solver})
    _figure(rows, mixes, out / "difficulty_transfer.png", args, what)
    print(f"wrote {out}/results.json and {out}/difficulty_transfer.png")


def _figure(rows, mixes, path, args, what):
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4.3), layout="constrained")
    for mix in mixes:
        mine = [r for r in rows if r["hard fraction"] == mix]
        if mine:
            ax.errorbar([r["budget s"] for r in mine], [r["rel L2 mean"] for r in mine],
                        yerr=[r["rel L2 std"] for r in mine], marker="o", capsize=3, label=f"{mix:.0%} hard")
    ax.set(xscale="log", yscale="log", xlabel="generation compute (recorded seconds)",
           ylabel="error on held-out hard samples", title=f"{what}: {args.easier} + hard mixes")
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
