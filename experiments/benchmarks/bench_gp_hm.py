"""Benchmark (not a test): seconds and peak memory per GP-HM optimisation step (loss + gradient)
against the grid size, with the Kronecker algebra vs a dense GP on the same points (the dense
prior factorises the full N×N covariance; run only while it fits), in 2-D and 3-D.

    python -m experiments.benchmarks.bench_gp_hm [--sizes2d 25,50,100,200,400,800] [--sizes3d 10,20,40] [--dense-max 4096]
        [--out results.json] [--plot scaling.png]
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from experiments.common import print_table, save_figure, write_json
from models.gp_hm.solver import GridGP
from pdekit.files.figures import pyplot
from pdekit.problems import get


def dense_prior(gp: GridGP):
    """½ log|K| + ½ UᵀK⁻¹U with K = ⊗K_d formed explicitly (the cost the Kronecker form avoids)."""
    K = None
    for kernel, x in zip(gp.kernels, gp.axes()):
        factor = kernel(x, x) + gp.jitter * torch.eye(len(x), dtype=x.dtype)
        K = factor if K is None else torch.kron(K, factor)
    L = torch.linalg.cholesky(K)
    u = gp.u.reshape(-1, 1)
    return torch.log(torch.diagonal(L)).sum() + 0.5 * torch.cholesky_solve(u, L).mul(u).sum()


def kron_prior(gp: GridGP):
    factors, _ = gp._factors()
    return 0.5 * factors.logdet() + 0.5 * factors.quadratic(gp.u)


def time_step(gp: GridGP, prior, repeats: int) -> tuple[float, float]:
    """(seconds per step, growth of the process's peak resident memory in MiB: meaningful because
    cases run in increasing size, all Kronecker cases before all dense ones)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prior(gp).backward()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        gp.zero_grad()
        prior(gp).backward()
    seconds = (time.perf_counter() - start) / repeats
    return seconds, max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, 0) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes2d", default="25,50,100,200,400,800")
    parser.add_argument("--sizes3d", default="10,20,40")
    parser.add_argument("--dense-max", type=int, default=4096, help="largest N for the dense GP")
    parser.add_argument("--components", type=int, default=30)
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    cases = [(2, int(n)) for n in args.sizes2d.split(",") if n] + [(3, int(n)) for n in args.sizes3d.split(",") if n]
    def build(dim, n):
        if dim == 2:
            problem = get("poisson-2d-sin100")
        else:  # any 3-D box problem: the prior's cost does not depend on the equation
            from pdekit.problems import Problem

            problem = Problem("box3d", 3, ((0.0, 1.0),) * 3, lambda x: x.sum(1), "bench")
        torch.manual_seed(0)
        gp = GridGP(problem, n, "stm", args.components, 20.0)
        with torch.no_grad():
            gp.u.normal_()
        return gp

    for dim, n in cases:
        kron_s, kron_mb = time_step(build(dim, n), kron_prior, 5 if n ** dim <= 40_000 else 2)
        rows.append({"dim": dim, "grid": f"{n}^{dim}", "unknowns": n ** dim, "Kronecker s/step": kron_s,
                     "Kronecker peak MiB": kron_mb, "dense s/step": float("nan"), "dense peak MiB": float("nan"),
                     "dense / Kronecker": float("nan")})
        print(rows[-1], flush=True)
    for row, (dim, n) in zip(rows, cases):
        if n ** dim <= args.dense_max:
            row["dense s/step"], row["dense peak MiB"] = time_step(build(dim, n), dense_prior, 2)
            row["dense / Kronecker"] = row["dense s/step"] / row["Kronecker s/step"]
            print(row, flush=True)
    print_table("GP-HM prior (log-det + quadratic form + gradient) per step, float64, "
                f"{torch.get_num_threads()} threads, Q = {args.components}", rows)
    if args.out:
        write_json(args.out, rows)
    if args.plot:
        plt = pyplot()

        fig, ax = plt.subplots(figsize=(5, 3.8), layout="constrained")
        for dim in (2, 3):
            chosen = [r for r in rows if r["dim"] == dim]
            if chosen:
                ax.loglog([r["unknowns"] for r in chosen], [r["Kronecker s/step"] for r in chosen], "o-",
                          label=f"Kronecker {dim}-D")
                ax.loglog([r["unknowns"] for r in chosen], [r["dense s/step"] for r in chosen], "s--",
                          label=f"dense {dim}-D")
        ax.set(xlabel="unknowns N", ylabel="seconds per step", title="GP-HM prior: Kronecker vs dense")
        ax.legend(fontsize=8)
        save_figure(fig, args.plot)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
