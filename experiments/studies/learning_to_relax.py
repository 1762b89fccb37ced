"""Experiment (not a test): learning SSOR's / SOR's relaxation ω across a sequence of linear systems
(Khodak et al., "Learning to Relax", ICLR 2024).

Sequences:
  paper      the reference's headline: SOR on the 10x10 Laplacian shifted by c_t I,
             c_t = -0.15 + 0.6 Beta(0.5, 1.5), |b| <= sqrt(n), to relative residual 1e-8 from x = 0
  one-level  Poisson systems of one pdekit level (medium), SSOR-preconditioned CG (pdekit.krylov.pcg)
  mixed      Poisson systems drawn from easy/medium/hard/extreme, shuffled
  channel    the pressure solves of a channel-flow run (fixed A, b from the flow, warm start from
             the previous pressure, the generator's tolerance 1e-6)

For every system and every ω of the grid (20 values in [1, 1.95]) the solve is run once and its
iterations and seconds stored (the cost table); since a solve's cost is a deterministic function
of (system, ω), each strategy is then a replay on that table:
  fixed ω = 1, the best fixed ω in hindsight, Tsallis-INF (pdekit.relaxation.TsallisINF, 5 seeds),
  the contextual variant (ContextualTsallisINF; features: log10 of the coefficient contrast and
  the Dirichlet share of the boundary, or the shift c_t binned in 6 for `paper`; none for the
  channel, whose matrix is fixed), the
  instance-optimal ω (per-system minimum: the lower bound), and AMG-PCG (pyamg, same tolerance).

    python -m experiments.studies.learning_to_relax [--systems 500] [--resolution 24] [--out folder]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

from experiments.common import print_table, refuse, save_figure, write_json
from pdekit.files.figures import pyplot

ARMS = np.round(np.linspace(1.0, 1.95, 20), 4)
COLORS = {"fixed omega = 1": "C0", "Tsallis-INF bandit": "C1", "contextual Tsallis-INF": "C2",
          "instance-optimal omega": "C3"}


# ----------------------------------------------------------------------------- cost tables
def _poisson_row(args):
    level, resolution, seed, tol = args
    import torch

    from datagen.poisson import sample_problem
    from pdekit import DiffusionOperator
    from pdekit.krylov import pcg
    from pdekit.precond import AMG, SSOR

    torch.set_num_threads(1)
    grid, a, mask, bc, f = sample_problem(level, resolution, 2, seed)
    op = DiffusionOperator(grid, a, mask, bc)
    b = op.rhs(torch.as_tensor(f))
    row = []
    for omega in ARMS:
        t0 = time.perf_counter()
        res = pcg(op, b, SSOR(op, float(omega)), tol=tol, maxiter=5000)
        row.append((int(res.iterations), time.perf_counter() - t0))
    t0 = time.perf_counter()
    amg = pcg(op, b, AMG(op), tol=tol)
    active = a[mask]
    bc_type = op.bc_type[0]
    dirichlet, neumann = int((bc_type == 1).sum()), int((bc_type == 2).sum())
    features = [float(np.log10(active.max() / active.min())), dirichlet / max(dirichlet + neumann, 1)]
    return row, (int(amg.iterations), time.perf_counter() - t0), features


def _channel_rows(systems: int, resolution: int, tol: float):
    """Run a channel flow with AMG-PCG, keeping each step's (b, previous pressure); then solve each
    of those systems with SSOR-PCG for every ω, warm-started as the flow does."""
    import torch

    from datagen.navier_stokes import OBSTACLE_LEVELS, draw_obstacles
    from datagen.ns_channel import ChannelFlow
    from datagen.ns_channel_run import stable_dt
    from pdekit.krylov import pcg
    from pdekit.precond import AMG, SSOR

    torch.set_num_threads(1)
    level = OBSTACLE_LEVELS["easy-medium"]
    flow = ChannelFlow(draw_obstacles(level, 0), nx=int(level.aspect * resolution), ny=resolution, height=1.0,
                       nu=1.0 / level.reynolds, u_max=1.0, tol=tol)
    dt = stable_dt(flow.h, flow.nu, flow.u_max, level.cfl)
    for _ in range(50):  # past the start-up transient
        flow.step(dt)
    sequence = []
    for _ in range(systems):
        start = flow.p.clone()
        flow.step(dt)
        sequence.append((flow.last_solve[0], start))
    ssor = {float(w): SSOR(flow.op, float(w)) for w in ARMS}
    amg = AMG(flow.op)
    rows = []
    for b, x0 in sequence:
        row = []
        for omega in ARMS:
            t0 = time.perf_counter()
            res = pcg(flow.op, b, ssor[float(omega)], x0=x0, tol=tol, maxiter=20000)
            row.append((int(res.iterations), time.perf_counter() - t0))
        t0 = time.perf_counter()
        reference = pcg(flow.op, b, amg, x0=x0, tol=tol)
        rows.append((row, (int(reference.iterations), time.perf_counter() - t0), [0.0]))
    return rows


def _paper_row(args):
    shift, seed = args
    import pyamg
    import scipy.sparse as sp

    from pdekit.krylov import sor

    A = pyamg.gallery.poisson((10, 10), format="csr") + shift * sp.identity(100, format="csr")
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(100)
    b *= min(1.0, 10.0 / np.linalg.norm(b))  # radially truncated N(0, I): |b| <= sqrt(n)
    row = []
    for omega in ARMS:
        t0 = time.perf_counter()
        res = sor(A, b, float(omega), tol=1e-8, maxiter=10000)
        row.append((int(res.iterations), time.perf_counter() - t0))
    return row, (0, 0.0), [float(shift)]


def cost_table(name: str, systems: int, resolution: int, pool) -> dict:
    if name == "paper":
        shifts = -0.15 + 0.6 * np.random.default_rng(0).beta(0.5, 1.5, size=systems)
        rows = pool.map(_paper_row, [(s, k) for k, s in enumerate(shifts)], chunksize=16)
    elif name == "channel":
        rows = _channel_rows(systems, resolution, 1e-6)
    else:
        if name == "one-level":
            levels = ["medium"] * systems
        else:
            levels = np.random.default_rng(1).permutation(
                np.resize(["easy", "medium", "hard", "extreme"], systems)).tolist()
        rows = pool.map(_poisson_row, [(lv, resolution, k, 1e-8) for k, lv in enumerate(levels)], chunksize=4)
    iterations = np.array([[c for c, _ in row] for row, _, _ in rows], float)
    seconds = np.array([[s for _, s in row] for row, _, _ in rows], float)
    return {"iterations": iterations, "seconds": seconds, "amg": np.array([r for _, r, _ in rows], float),
            "features": np.array([f for _, _, f in rows], float)}


# ------------------------------------------------------------------------------- strategies
def replay(table, chooser_factory, contextual=False, seeds=5) -> tuple[np.ndarray, np.ndarray]:
    """Per-instance (iterations, seconds) of a chooser replayed on the cost table, mean over seeds."""
    its, secs = [], []
    for seed in range(seeds):
        chooser = chooser_factory(seed)
        picked = []
        for t, row in enumerate(table["iterations"]):
            context = table["features"][t]
            omega = chooser.choose(context) if contextual else chooser.choose()
            arm = int(np.flatnonzero(ARMS == omega)[0])
            chooser.update(omega, row[arm], context) if contextual else chooser.update(omega, row[arm])
            picked.append(arm)
        rows = np.arange(len(picked))
        its.append(table["iterations"][rows, picked])
        secs.append(table["seconds"][rows, picked])
    return np.mean(its, axis=0), np.mean(secs, axis=0)


def strategies(name, table) -> dict:
    from pdekit.relaxation import ContextualTsallisINF, TsallisINF

    its, secs = table["iterations"], table["seconds"]
    best = int(np.argmin(its.sum(0)))
    rows = np.arange(len(its))
    optimal = its.argmin(1)
    out = {
        "fixed omega = 1 (Gauss-Seidel; symmetric GS for SSOR)": (its[:, 0], secs[:, 0]),
        f"best fixed omega in hindsight ({ARMS[best]:g})": (its[:, best], secs[:, best]),
        "Tsallis-INF bandit (5 seeds)": replay(table, lambda s: TsallisINF(ARMS, seed=s)),
    }
    if name != "channel":  # the channel's A is fixed: no instance features to condition on
        # bins: the shift c_t in 6 (the reference's TsallisINFCB), else log10 contrast x Dirichlet share
        edges = [[0.0, 0.1, 0.2, 0.3, 0.4]] if name == "paper" else [[0.5, 2.5, 3.5], [0.5, 0.75]]
        out["contextual Tsallis-INF (5 seeds)"] = replay(
            table, lambda s: ContextualTsallisINF(edges, ARMS, seed=s), contextual=True)
    out["instance-optimal omega (lower bound)"] = (its[rows, optimal], secs[rows, optimal])
    if name != "paper":
        out["AMG-PCG (pyamg, for scale)"] = (table["amg"][:, 0], table["amg"][:, 1])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=500, help="length of each Poisson / channel sequence")
    parser.add_argument("--paper-systems", type=int, default=2000, help="length of the `paper` sequence")
    parser.add_argument("--resolution", type=int, default=24, help="Poisson grid, channel cells across")
    parser.add_argument("--sequences", default="paper,one-level,mixed,channel")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default="experiments/results/learning_to_relax")
    args = parser.parse_args()
    sequences = ("paper", "one-level", "mixed", "channel")
    unknown = sorted(set(args.sequences.split(",")) - set(sequences))
    if unknown:
        refuse(f"--sequences: unknown {', '.join(unknown)}; choose from {', '.join(sequences)}")
    for flag, value, low in (("--systems", args.systems, 1), ("--paper-systems", args.paper_systems, 1),
                             ("--resolution", args.resolution, 8), ("--workers", args.workers, 1)):
        if value < low:
            refuse(f"{flag} must be >= {low}, got {value}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    with mp.get_context("forkserver").Pool(args.workers) as pool:
        for name in args.sequences.split(","):
            t0 = time.perf_counter()
            table = cost_table(name, args.paper_systems if name == "paper" else args.systems, args.resolution, pool)
            curves = strategies(name, table)
            horizon = len(table["iterations"])
            marks = [m for m in (100, 250, horizon // 2, horizon) if m <= horizon]
            rows = []
            for label, (its, secs) in curves.items():
                row = {"strategy": label}
                row.update({f"mean its, first {m}": float(its[:m].mean()) for m in sorted(set(marks))})
                row["total seconds"] = float(secs.sum())
                rows.append(row)
            print_table(f"{name}: {horizon} systems ({time.perf_counter() - t0:.0f} s to build the cost table)", rows)
            results[name] = {"rows": rows, "curves": {k: v[0].tolist() for k, v in curves.items()}}
            sys.stdout.flush()
    write_json(out / "results.json", results)
    figure(results, out / "regret.png")
    print(f"\nwrote {out}/results.json and {out}/regret.png")


def figure(results, path):
    plt = pyplot()

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False, layout="constrained")
    for ax, (name, result) in zip(axes[0], results.items()):
        curves = result["curves"]
        best = np.asarray(next(v for k, v in curves.items() if k.startswith("best fixed")))
        steps = np.arange(1, len(best) + 1)
        for label, curve in curves.items():
            if label.startswith(("best fixed", "AMG")):
                continue
            regret = (np.cumsum(curve) - np.cumsum(best)) / steps
            name_ = label.split(" (")[0]
            ax.plot(steps, regret, label=name_, color=COLORS.get(name_))
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{name}", fontsize=9)
        ax.set_xlabel("systems solved")
        ax.set_ylabel("mean regret vs best fixed omega (iterations)")
    for ax in axes[0]:
        ax.legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
