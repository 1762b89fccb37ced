"""Experiment (not a test): how to spend classical-solver compute across difficulty levels
(the question of arXiv 2512.00564, "Pre-Generating Multi-Difficulty PDE Data for Few-Shot Neural
PDE Solvers": mixing in easier data reached the same error on hard problems for up to 8.9× less
generation compute, and ≥ 10% hard samples sufficed).

Poisson at 64², levels easy and hard.  Pools are generated once with an iterative solver
(``--solver cg`` by default: plain CG, whose cost grows with difficulty as in the usual data
pipelines; ``datagen cost`` prints the pools' recorded cost per level).  For each generation
budget (seconds of recorded solver time) and each hard fraction of it, the training set takes
hard samples worth fraction × budget and easy samples worth the rest (counts from the pools' mean
per-sample cost), the same FNO is trained with the same recipe (experiments/configs/
difficulty_transfer_fno.yaml: the same number of Adam steps for every set) for several seeds, and
evaluated on held-out **hard** samples (final model).

    python experiments/difficulty_transfer.py [--budgets 5,12,25] [--mixes 1,0.5,0.25,0.1,0] [--seeds 0,1]
                                              [--solver cg] [--steps 600]

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
import sys
import time
from pathlib import Path

import numpy as np

from results_io import enter_base, print_table, save_figure, write_json  # experiments/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments/configs/difficulty_transfer_fno.yaml"


def make_pools(folder: Path, budget: float, easier: str, solver: str, resolution: int, test: int = 100) -> dict:
    """Pools for budgets up to ``budget`` hard-sample equivalents at every mix: hard first, then an
    easier pool sized from the measured cost ratio (regenerated larger when an earlier, smaller one is
    there: samples are pure functions of their seed, so the old pool is a prefix of the new)."""
    import datagen.cli
    from datagen.cost import sample_costs
    from pdekit.data import open_dataset

    paths = {"easier": folder / f"pool_{easier}.h5", "hard": folder / "pool_hard.h5", "test": folder / "test_hard.h5"}

    def generate(name, level, n, seed, how):
        if paths[name].exists():
            with open_dataset(paths[name]) as h5:
                if h5["u"].shape[0] >= n:
                    return
        argv = ["poisson", "--level", level, "--n", str(n), "--resolution", str(resolution), "--seed", str(seed),
                "--solver", how, "--out", str(paths[name]), "--quiet", "--overwrite"]
        print(f"generating datagen {' '.join(argv)}", flush=True)
        if datagen.cli.main(argv) != 0:
            raise SystemExit(f"datagen {' '.join(argv)} failed")

    generate("hard", "hard", int(budget * 1.25) + 10, 0, solver)
    generate("test", "hard", test, 1_000_000, "auto")  # the test set's cost is not budgeted: the fast solver
    generate("easier", easier, 64, 0, solver)  # a pilot (or the existing pool) measures the cost ratio
    ratio = sample_costs(paths["hard"])[0].mean() / sample_costs(paths["easier"])[0].mean()
    generate("easier", easier, int(budget * ratio * 1.15) + 10, 0, solver)
    return paths


def train_and_test(paths, counts, seed: int, steps: int, run: Path, out: Path) -> float:
    import pdekit.cli
    from pdekit.evaluate import evaluate

    shutil.rmtree(run, ignore_errors=True)
    sys.argv = ["pdekit"]
    code = pdekit.cli.main(["fit", "--config", str(CONFIG), "--seed_everything", str(seed),
                            "--trainer.max_steps", str(steps), "--trainer.default_root_dir", str(run),
                            "--trainer.logger.init_args.save_dir", str(run),
                            "--trainer.callbacks.init_args.dirpath", str(run / "checkpoints"),
                            "--data.init_args.files", f"[{paths['easier']},{paths['hard']}]",
                            "--data.init_args.counts", f"[{counts[0]},{counts[1]}]",
                            "--data.init_args.seed", str(seed)])
    if code != 0:
        raise SystemExit(f"pdekit fit failed for counts {counts}, seed {seed}")
    metrics = evaluate(run / "checkpoints/last.ckpt", [paths["test"]], out, figures=0)
    return float(metrics["overall"]["rel_l2_mean"])


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
    parser.add_argument("--budgets", default="5,12,25", help="in hard-sample equivalents")
    parser.add_argument("--mixes", default="1,0.5,0.25,0.1,0", help="hard fraction of the budget")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--solver", default="cg", help="the pools' solver (its recorded cost is the budget)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--easier", default="easy", help="the easier Poisson level mixed with hard")
    parser.add_argument("--base", default=".", help="runs/difficulty_transfer/ is made here")
    parser.add_argument("--out", default="experiments/results/difficulty_transfer")
    args = parser.parse_args()
    out, folder = enter_base(args, "runs/difficulty_transfer")
    budgets = [float(b) for b in args.budgets.split(",")]
    mixes = [float(m) for m in args.mixes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    paths = make_pools(folder, max(budgets), args.easier, args.solver, args.resolution)
    cost = {name: float(sample_costs(paths[name])[0].mean()) for name in ("easier", "hard")}
    print(f"mean recorded cost per sample ({args.solver}): {args.easier} {cost['easier']:.3g} s, hard "
          f"{cost['hard']:.3g} s ({cost['hard'] / cost['easier']:.1f}×)", flush=True)
    available = {name: int(sample_costs(paths[name])[0].size) for name in ("easier", "hard")}
    plan = {(budget, mix): (int(round((1 - mix) * budget * cost["hard"] / cost["easier"])), int(round(mix * budget)))
            for budget in budgets for mix in mixes}
    short = [(key, counts) for key, counts in plan.items()
             if counts[0] > available["easier"] or counts[1] > available["hard"]]
    if short:  # before any training: lower --budgets or delete the pools to regenerate them larger
        (budget, mix), counts = short[0]
        raise SystemExit(f"pools too small for budget {budget:g}, hard fraction {mix:g}: need {counts[0]} {args.easier} "
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
                errors.append(train_and_test(paths, counts, seed, args.steps, folder / "run", out / "last_eval"))
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
    print_table(f"Difficulty transfer, Poisson {args.resolution}²: hard-test relative L2 (mean ± std over seeds "
                f"{args.seeds}), FNO, {args.steps} Adam steps; budgets in recorded {args.solver} seconds", rows)
    print_table("Compute saving at equal hard-test error vs all-hard (>1: the mix needs less generation compute; "
                "NaN: outside the all-hard curve's range)", savings)
    write_json(out / "results.json", {"rows": rows, "savings": savings, "cost_per_sample": cost, "solver": args.solver})
    _figure(rows, mixes, out / "difficulty_transfer.png", args)
    print(f"wrote {out}/results.json and {out}/difficulty_transfer.png")


def _figure(rows, mixes, path, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.3), layout="constrained")
    for mix in mixes:
        mine = [r for r in rows if r["hard fraction"] == mix]
        if mine:
            ax.errorbar([r["budget s"] for r in mine], [r["rel L2 mean"] for r in mine],
                        yerr=[r["rel L2 std"] for r in mine], marker="o", capsize=3, label=f"{mix:.0%} hard")
    ax.set(xscale="log", yscale="log", xlabel=f"generation compute (recorded {args.solver} seconds)",
           ylabel="relative L2 on held-out hard samples", title=f"Poisson {args.resolution}²: {args.easier} + hard mixes")
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
