"""Benchmark (not a test): a trained NPSolver against classical solves, as a solver and as a warm start.

Held-out Poisson problems (``sample_problem`` seeds 10_000+, never in training) of the medium and
hard levels at 64², 128², 256², with the network trained at 64² applied unchanged.  Per problem:

* forward time of the network (batch 1) and its relative L2 error against the direct solution;
* sparse LU (factor + solve) and AMG-PCG to 1e-8 (setup + solve) times;
* **speed-up at matched accuracy**: the time AMG-PCG needs to reach the network's own error
  (fewest iterations k with error ≤ the network's; setup + k iterations) over one forward pass;
* **warm start**: CG and AMG-PCG iterations and seconds to 1e-6 and 1e-8 from zero and from the
  network's guess (:func:`pdekit.learning.solvers.initial_guess`, energy-scaled; forward time included).

    python -m experiments.benchmarks.bench_npsolver --ckpt runs/npsolver_study/pcg/checkpoints/last.ckpt [--samples 3]
        [--sizes 64,128,256] [--levels medium,hard] [--device cpu] [--out results.json]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy.sparse.linalg as spla
import torch

from datagen.poisson import sample_problem
from experiments.common import print_table, write_json
from pdekit import DiffusionOperator
from pdekit.krylov import pcg
from pdekit.learning.checkpoints import load_task
from pdekit.learning.solvers import initial_guess
from pdekit.precond import AMG


def timed(fn, device="cpu"):
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - start


def relative_error(x, exact):
    return float((x - exact).norm() / exact.norm())


def one_problem(task, level, n, seed, device):
    grid, a, mask, bc, f = sample_problem(level, n, 2, seed)
    op = DiffusionOperator(grid, a, mask, bc)
    b = op.rhs(f)
    layout = op.layout()
    matrix = op.to_sparse()
    (lu_x), lu_seconds = timed(lambda: spla.splu(matrix.tocsc()).solve(layout.to_vectors_np(b.numpy())))
    exact = layout.to_fields(torch.from_numpy(lu_x))
    f_t = torch.as_tensor(f)
    initial_guess(task, op, f_t, device=device)  # warm-up (first-call allocations)
    raw, forward = timed(lambda: initial_guess(task, op, f_t, device=device, energy_scaling=False), device)
    guess, guess_seconds = timed(lambda: initial_guess(task, op, f_t, device=device), device)
    row = {"level": level, "n": n, "net rel L2": relative_error(raw, exact),
           "net rel L2 (energy-scaled)": relative_error(guess, exact), "forward s": forward,
           "LU s": lu_seconds}
    amg, setup = timed(lambda: AMG(op))
    solved, solve = timed(lambda: pcg(op, b, amg, tol=1e-8))
    row["AMG-PCG 1e-8 s"] = setup + solve
    # AMG-PCG iterations needed to match the network's error (its raw prediction)
    target = row["net rel L2"]
    k = 0
    while True:
        k += 1
        result = pcg(op, b, amg, tol=0.0, maxiter=k)
        if relative_error(result.x, exact) <= target or k >= 200:
            break
    _, k_seconds = timed(lambda: pcg(op, b, amg, tol=0.0, maxiter=k))
    row["AMG its to net error"] = k
    row["AMG s to net error"] = setup + k_seconds
    row["speed-up at matched accuracy"] = (setup + k_seconds) / forward
    for tol in (1e-6, 1e-8):
        for name, make in (("CG", lambda: None), ("AMG-PCG", lambda: AMG(op))):
            cold, cold_s = timed(lambda: pcg(op, b, make(), tol=tol))
            warm, warm_s = timed(lambda: pcg(op, b, make(), x0=guess, tol=tol))
            row[f"{name} {tol:.0e} its cold/warm"] = f"{int(cold.iterations)}/{int(warm.iterations)}"
            row[f"{name} {tol:.0e} s saved"] = cold_s - (warm_s + guess_seconds)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--levels", default="medium,hard")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    print(f"# NPSolver benchmark: {platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, device {args.device}")
    task, _ = load_task(args.ckpt)
    task = task.to(args.device)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        for level in args.levels.split(","):
            samples = [one_problem(task, level, n, 10_000 + s, args.device) for s in range(args.samples)]
            row = {}
            for key in samples[0]:
                values = [s[key] for s in samples]
                if isinstance(values[0], str) and "/" in values[0]:  # iterations cold/warm: means
                    pairs = np.array([[float(v) for v in x.split("/")] for x in values])
                    row[key] = f"{pairs[:, 0].mean():.1f}/{pairs[:, 1].mean():.1f}"
                elif isinstance(values[0], (int, float)) and not isinstance(values[0], bool):
                    row[key] = float(np.mean(values)) if key not in ("n",) else values[0]
                else:
                    row[key] = values[0]
            rows.append(row)
            print(row, flush=True)
    solver_keys = ["level", "n", "net rel L2", "forward s", "LU s", "AMG-PCG 1e-8 s", "AMG its to net error",
                   "AMG s to net error", "speed-up at matched accuracy"]
    print_table(f"NPSolver ({args.ckpt}) as a solver, mean of {args.samples} held-out problems",
                [{k: r[k] for k in solver_keys} for r in rows])
    warm_keys = ["level", "n", "net rel L2 (energy-scaled)"] + [k for k in rows[0] if "cold/warm" in k or "saved" in k]
    print_table("Warm start (x0 = the network's energy-scaled guess): iterations cold/warm, seconds saved "
                "(forward pass included; negative = slower)", [{k: r[k] for k in warm_keys} for r in rows])
    if args.out:
        write_json(args.out, rows)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
