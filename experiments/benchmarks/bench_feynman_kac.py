"""Benchmark (not a test): Feynman–Kac labels by walk-on-spheres vs Euler–Maruyama — error
against the exact solution and seconds per label vs number of paths, at d = 2, 5, 10
(−Δu = f in the unit d-ball, pdekit.problems ``poisson-ball-<d>d``; 8 fixed interior points).

Columns: rms error = √mean (label − exact)² over the points; mean stderr = the labels' own Monte
Carlo standard error; z rms = √mean ((label − exact)/stderr)², which is ≈ 1 for an unbiased sampler
and grows with the number of paths when a bias (Euler–Maruyama's exit overshoot) dominates.

    python -m experiments.benchmarks.bench_feynman_kac [--dims 2,5,10] [--paths 100,400,1600] [--points 8]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from datagen.feynman_kac import labels
from experiments.common import print_table, refuse, write_json
from pdekit.problems import get


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="2,5,10")
    parser.add_argument("--paths", default="100,400,1600")
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--dts", default="1e-3,1e-4", help="Euler–Maruyama time steps")
    parser.add_argument("--out", default="experiments/results/bench_feynman_kac.json")
    args = parser.parse_args()
    try:
        dims = [int(d) for d in args.dims.split(",")]
        path_counts = [int(p) for p in args.paths.split(",")]
        dts = [float(dt) for dt in args.dts.split(",")]
    except ValueError:
        refuse("--dims, --paths and --dts are comma-separated numbers")
    if not set(dims) <= {2, 5, 10}:
        refuse(f"--dims must be from 2, 5, 10 (the problems poisson-ball-<d>d), got {args.dims}")
    if min(path_counts) < 2 or args.points < 1:
        refuse(f"need --paths >= 2 and --points >= 1, got {args.paths} and {args.points}")
    if not all(0 < dt <= 1e-2 for dt in dts):  # the unit ball's exit time is ~0.05-0.25: larger steps bias
        refuse(f"--dts must lie in (0, 0.01], got {args.dts}")
    torch.set_num_threads(1)
    rows = []
    for dim in dims:
        problem = get(f"poisson-ball-{dim}d")
        x = problem.domain.sample_interior(args.points, torch.Generator().manual_seed(0))
        exact = problem.solution(x).numpy()
        samplers = [("walk-on-spheres", None)] + [("euler-maruyama", dt) for dt in dts]
        for sampler, dt in samplers:
            for paths in path_counts:
                out = labels(problem, x, sampler, paths, seeds=range(args.points), dt=1e-4 if dt is None else dt)
                error = out["value"] - exact
                rows.append({"d": dim, "sampler": sampler if dt is None else f"EM dt={dt:g}", "paths": paths,
                             "rms error": float(np.sqrt(np.mean(error**2))), "mean stderr": float(out["stderr"].mean()),
                             "z rms": float(np.sqrt(np.mean((error / out["stderr"]) ** 2))),
                             "steps/path": float(out["steps"].mean()), "s/label": float(out["seconds"].mean())})
                print(rows[-1], flush=True)
    print_table("Feynman–Kac labels, poisson-ball-<d>d, 8 points (one CPU thread)", rows)
    write_json(Path(args.out), {"rows": rows})


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
