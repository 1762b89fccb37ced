"""Benchmark of pdekit's numerical core (not a test): prints tables and writes them as JSON.

1. Iterations and wall time to relative residual 1e-8 for CG, Jacobi-PCG, ILU-PCG and AMG-PCG
   (pdekit's batched torch PCG, one right-hand side) on 2D and 3D Poisson problems with constant
   and high-contrast (1e4, 8 blocks per axis) coefficients.
2. Matrix-free torch operator apply vs scipy CSR matvec, single vector and batch of 32.
3. Batched torch CG throughput per right-hand side vs scipy.sparse.linalg.cg one at a time.

    python -m experiments.benchmarks.bench_krylov [--small] [--out results.json] [--device cuda]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import scipy.sparse.linalg as spla
import torch

from experiments.common import write_json
from pdekit import DiffusionOperator, Grid
from pdekit.krylov import pcg
from pdekit.precond import AMG, ILU, Jacobi


def high_contrast(shape, contrast=1e4, blocks=8, seed=0):
    """Binary inclusions on a blocks^d lattice (same geometry at every resolution)."""
    rng = np.random.default_rng(seed)
    pattern = np.where(rng.random((blocks,) * len(shape)) < 0.3, contrast, 1.0)
    for axis, n in enumerate(shape):
        pattern = np.repeat(pattern, -(-n // blocks), axis=axis)
    return pattern[tuple(slice(0, n) for n in shape)]


def timed(fn, repeat=1):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def solver_table(problems, device, maxiter_cap):
    rows = []
    for shape, coeff in problems:
        a = None if coeff == "constant" else high_contrast(shape)
        op = DiffusionOperator(Grid.box(shape), a)
        b = op.rhs(torch.as_tensor(np.random.default_rng(1).standard_normal(shape))).to(device)
        for method in ("CG", "Jacobi-PCG", "ILU-PCG", "AMG-PCG"):
            build = {"CG": lambda: None, "Jacobi-PCG": lambda: Jacobi(op),
                     "ILU-PCG": lambda: ILU(op), "AMG-PCG": lambda: AMG(op)}[method]
            M, setup = timed(build)
            cap = maxiter_cap if method in ("CG", "Jacobi-PCG") else max(200, maxiter_cap // 10)
            res, solve = timed(lambda: pcg(op, b, M, tol=1e-8, maxiter=cap))
            row = {"problem": "x".join(map(str, shape)), "coefficient": coeff, "method": method,
                   "unknowns": int(np.prod(shape)), "iterations": int(res.iterations.item()),
                   "converged": bool(res.converged.item()), "residual": float(res.residual.item()),
                   "setup_s": setup, "solve_s": solve}
            rows.append(row)
            print(f"  {row['problem']:>9} {coeff:>13} {method:>11}: {row['iterations']:>6} it"
                  f"{'' if row['converged'] else ' (cap)'}  setup {setup:7.3f} s  solve {solve:8.3f} s", flush=True)
    return rows


def matvec_table(shapes, device, repeat):
    rows = []
    for shape in shapes:
        op = DiffusionOperator(Grid.box(shape), high_contrast(shape))
        A = op.to_sparse()
        for batch in (1, 32):
            u = torch.randn((batch,) + shape, dtype=torch.float64, device=device)
            uv = op.layout().to_vectors(u.cpu()).numpy().T.copy()
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            op(u)
            sync()
            _, t_torch = timed(lambda: (op(u), sync()), repeat)
            _, t_csr = timed(lambda: A @ uv, repeat)
            rows.append({"problem": "x".join(map(str, shape)), "batch": batch, "torch_ms": 1e3 * t_torch,
                         "csr_ms": 1e3 * t_csr, "speedup": t_csr / t_torch})
            r = rows[-1]
            print(f"  {r['problem']:>9} batch {batch:>2}: torch {r['torch_ms']:8.3f} ms  CSR {r['csr_ms']:8.3f} ms"
                  f"  (torch {r['speedup']:.2f}x)", flush=True)
    return rows


def batched_cg_table(shape, batch, device):
    op = DiffusionOperator(Grid.box(shape))
    rng = np.random.default_rng(2)
    b = op.rhs(torch.as_tensor(rng.standard_normal((batch,) + shape))).to(device)
    res, t_torch = timed(lambda: pcg(op, b, None, tol=1e-8))
    A = op.to_sparse()
    bv = op.layout().to_vectors(b.cpu()).numpy()

    def scipy_all():
        for i in range(batch):
            spla.cg(A, bv[i], rtol=1e-8, maxiter=100000)

    _, t_scipy = timed(scipy_all)
    row = {"problem": "x".join(map(str, shape)), "batch": batch, "iterations_max": int(res.iterations.max()),
           "torch_batched_ms_per_rhs": 1e3 * t_torch / batch, "scipy_ms_per_rhs": 1e3 * t_scipy / batch,
           "speedup": t_scipy / t_torch}
    print(f"  {row['problem']} x {batch} RHS: batched torch CG {row['torch_batched_ms_per_rhs']:.1f} ms/RHS, "
          f"scipy cg {row['scipy_ms_per_rhs']:.1f} ms/RHS ({row['speedup']:.2f}x)", flush=True)
    return [row]


def markdown(rows, keys):
    head = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    return head + "".join("| " + " | ".join(fmt(r[k]) for k in keys) + " |\n" for r in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="small sizes (seconds; used by `make demo`)")
    parser.add_argument("--out", default="experiments/results/bench_krylov.json", help="JSON output path")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--maxiter", type=int, default=20000, help="iteration cap for CG/Jacobi-PCG")
    args = parser.parse_args(argv)
    if args.small:
        problems = [((n, n), c) for n in (32, 64) for c in ("constant", "high-contrast")] + \
                   [((16, 16, 16), c) for c in ("constant", "high-contrast")]
        mv_shapes, cg_shape, repeat = [(64, 64), (16, 16, 16)], (32, 32), 5
    else:
        problems = [((n, n), c) for c in ("constant", "high-contrast") for n in (64, 128, 256, 512)] + \
                   [((n, n, n), c) for c in ("constant", "high-contrast") for n in (32, 64)]
        mv_shapes, cg_shape, repeat = [(256, 256), (512, 512), (64, 64, 64)], (128, 128), 20
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    print("\n1. Solvers to relative residual 1e-8 (pdekit pcg, one right-hand side)")
    solvers = solver_table(problems, args.device, args.maxiter)
    print("\n2. Operator apply: matrix-free torch vs scipy CSR (high-contrast coefficient)")
    matvec = matvec_table(mv_shapes, args.device, repeat)
    print("\n3. Batched CG throughput (constant coefficient, 32 right-hand sides)")
    batched = batched_cg_table(cg_shape, 32, args.device)
    result = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "solvers": solvers, "matvec": matvec, "batched_cg": batched}
    print("\n" + markdown(solvers, ["problem", "coefficient", "method", "iterations", "converged",
                                    "setup_s", "solve_s"]))
    print(markdown(matvec, ["problem", "batch", "torch_ms", "csr_ms", "speedup"]))
    print(markdown(batched, ["problem", "batch", "iterations_max", "torch_batched_ms_per_rhs",
                             "scipy_ms_per_rhs", "speedup"]))
    write_json(args.out, result)  # atomic: a killed run leaves the old file intact
    print(f"wrote {args.out}")


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
