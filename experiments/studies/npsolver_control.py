"""Experiment (not a test): NPSolver's downstream boundary-control task, small.

Problem: −Δu = f on the unit square, u = 0 on three sides and u = g(y) on the left side (x = 0),
with a fixed heat source f (a Gaussian bump near the left side).  Choose the control
g(y) = Σ_k c_k sin(kπy), k = 1..6, to keep max u ≤ u_max while spending as little control as
possible: minimise  ½‖c‖² + μ mean(relu(u − u_max)²)  by gradient descent (Adam, cosine-decayed step, 1000 iterations) on the c_k.

1. Train an NPSolver surrogate label-free (PCG supervision; no solve of any training problem) on
   random problems of this family: random sources (Gaussian bumps + smooth Fourier modes) and
   random controls — generated in memory, the way the reference trains on the fly.
2. Optimise the control through the surrogate (autograd through the network).
3. Check: solve the optimised control's problem with the classical solver (the surrogate's claimed
   max u vs the true one), and compare with the same optimisation through the exact linear map
   (u = u_f + Σ c_k u_k from seven classical solves).

Writes results.json and control.png under --out.

    python -m experiments.studies.npsolver_control [--resolution 32] [--steps 1500] [--threshold 0.6] [--penalty 1e5] [--iterations 1000]
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from experiments.common import print_table, save_figure, write_json
from models.npsolver import NPSolver
from pdekit.boundary import ACTIVE, DIRICHLET
from pdekit.files.figures import pyplot
from pdekit.grid import Grid
from pdekit.krylov import pcg
from pdekit.operators import DiffusionOperator
from pdekit.precond import AMG

MODES = 6


def control_values(grid: Grid, c: torch.Tensor) -> torch.Tensor:
    """g at the left side's ghost nodes, (B, n) from mode amplitudes c (B, MODES)."""
    y = torch.as_tensor(grid.axis_coordinates(1), dtype=c.dtype)
    k = torch.arange(1, MODES + 1, dtype=c.dtype)
    return c @ torch.sin(math.pi * k[:, None] * y[None, :])


def problem_arrays(grid: Grid, f: torch.Tensor, c: torch.Tensor) -> dict:
    """A batch in the file format: a, f (B, n, n); bc_type, bc_value padded (B, n+2, n+2)."""
    n, batch = grid.shape[0], f.shape[0]
    bc_type = torch.full((batch, n + 2, n + 2), DIRICHLET, dtype=torch.int8)
    bc_type[:, 1:-1, 1:-1] = ACTIVE
    g = control_values(grid, c)
    zeros = torch.zeros(batch, n + 2, n + 2, dtype=g.dtype)
    column = torch.zeros(batch, n + 2, dtype=g.dtype)
    column = torch.cat([column[:, :1], g, column[:, -1:]], dim=1)  # corners stay 0
    bc_value = torch.cat([column[:, None, :], zeros[:, 1:, :]], dim=1)  # padded row 0 = the x = 0 side
    return {"a": torch.ones(batch, n, n, dtype=torch.float64), "f": f, "bc_type": bc_type, "bc_value": bc_value}


def random_sources(grid: Grid, batch: int, rng: np.random.Generator) -> torch.Tensor:
    x, y = grid.coordinates()
    out = np.zeros((batch, *grid.shape))
    for i in range(batch):
        for _ in range(rng.integers(1, 4)):
            cx, cy, width = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
            out[i] += rng.uniform(0, 40) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2))
        kx, ky = rng.integers(1, 4, size=2)
        out[i] += rng.normal(0, 5) * np.sin(kx * np.pi * x) * np.sin(ky * np.pi * y)
    return torch.as_tensor(out)


def random_controls(batch: int, rng: np.random.Generator) -> torch.Tensor:
    scale = rng.uniform(0, 1.5, size=(batch, 1))
    return torch.as_tensor(scale * rng.normal(size=(batch, MODES)) / np.arange(1, MODES + 1))


def train_surrogate(grid: Grid, steps: int, seed: int) -> tuple[NPSolver, float]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    task = NPSolver(network_kwargs={"layers": 4, "width": 64, "heads": 4, "slices": [16, 4]}, lr=1e-3)
    task.grid = grid
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    start = time.perf_counter()
    for step in range(steps):
        batch = problem_arrays(grid, random_sources(grid, 8, rng), random_controls(8, rng))
        batch["index"] = torch.arange(8)
        loss = task._loss(task.losses(batch))  # PCG supervision: no solution is ever computed
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % max(1, steps // 10) == 0:
            print(f"surrogate step {step}: PCG-supervision loss {float(loss):.4f}", flush=True)
    return task.eval(), time.perf_counter() - start


def classical_solve(grid: Grid, arrays: dict) -> torch.Tensor:
    """Each problem of the batch solved by AMG-PCG to 1e-10."""
    solutions = []
    for i in range(arrays["f"].shape[0]):
        op = DiffusionOperator.from_arrays(grid, arrays["a"][i], arrays["bc_type"][i], arrays["bc_value"][i].detach())
        solutions.append(pcg(op, op.rhs(arrays["f"][i].detach()), AMG(op), tol=1e-10).x)
    return torch.stack(solutions)


def optimise(solve, c0: torch.Tensor, u_max: float, penalty: float, iterations: int, lr: float) -> torch.Tensor:
    c = c0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([c], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations)  # settles on the boundary
    for _ in range(iterations):
        u = solve(c)
        objective = (c**2).sum() / 2 + penalty * torch.relu(u - u_max).pow(2).mean()
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
        schedule.step()
    return c.detach()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1500, help="surrogate training steps (batch 8)")
    parser.add_argument("--threshold", type=float, default=0.6, help="u_max as a fraction of the uncontrolled max")
    parser.add_argument("--penalty", type=float, default=1e5, help="μ: weight of the mean squared violation")
    parser.add_argument("--iterations", type=int, default=1000, help="Adam steps of the control optimisation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="experiments/results/npsolver_control")
    args = parser.parse_args()
    n = args.resolution
    grid = Grid.box((n, n))
    out = Path(args.out)
    cache = out / f"surrogate_{n}_{args.steps}_{args.seed}.pt"  # weights only: re-running the optimisation skips training
    if cache.exists():
        surrogate = NPSolver(network_kwargs={"layers": 4, "width": 64, "heads": 4, "slices": [16, 4]})
        surrogate.load_state_dict(torch.load(cache, weights_only=True))
        surrogate.grid, train_seconds = grid, float("nan")
        surrogate.eval()
    else:
        surrogate, train_seconds = train_surrogate(grid, args.steps, args.seed)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(surrogate.state_dict(), cache)

    x, y = grid.coordinates()
    f = torch.as_tensor(30 * np.exp(-((x - 0.25) ** 2 + (y - 0.55) ** 2) / (2 * 0.1**2)))[None]
    zero = torch.zeros(1, MODES, dtype=torch.float64)
    uncontrolled = classical_solve(grid, problem_arrays(grid, f, zero))
    u_max = args.threshold * float(uncontrolled.max())

    def through_surrogate(c):
        return surrogate.solve(grid, **{k: v for k, v in problem_arrays(grid, f, c).items()})

    # exact linear map u(c) = u_f + Σ c_k u_k from seven classical solves
    basis = classical_solve(grid, problem_arrays(grid, torch.zeros(MODES, n, n, dtype=torch.float64),
                                                 torch.eye(MODES, dtype=torch.float64)))

    def through_exact(c):
        return uncontrolled + torch.einsum("bk,kxy->bxy", c, basis)

    start = time.perf_counter()
    c_surrogate = optimise(through_surrogate, zero, u_max, args.penalty, args.iterations, 0.05)
    surrogate_seconds = time.perf_counter() - start
    c_exact = optimise(through_exact, zero, u_max, args.penalty, args.iterations, 0.05)
    with torch.no_grad():
        claimed = through_surrogate(c_surrogate)
    true = classical_solve(grid, problem_arrays(grid, f, c_surrogate))
    exact_opt = through_exact(c_exact)
    rows = [{"": "uncontrolled", "control cost ½‖c‖²": 0.0, "max u (true)": float(uncontrolled.max()),
             "max u (surrogate's claim)": float("nan")},
            {"": "optimised through the surrogate", "control cost ½‖c‖²": float((c_surrogate**2).sum() / 2),
             "max u (true)": float(true.max()), "max u (surrogate's claim)": float(claimed.max())},
            {"": "optimised through the exact map", "control cost ½‖c‖²": float((c_exact**2).sum() / 2),
             "max u (true)": float(exact_opt.max()), "max u (surrogate's claim)": float("nan")}]
    print_table(f"Boundary control at {n}^2: keep max u <= {u_max:.4f} ({args.threshold:.0%} of the uncontrolled "
                f"max); surrogate trained label-free for {args.steps} steps ({train_seconds:.0f} s); "
                f"{args.iterations} Adam steps through it took {surrogate_seconds:.1f} s", rows)
    surrogate_error = float((claimed - true).norm() / true.norm())
    print(f"surrogate's relative L2 error on the optimised problem: {surrogate_error:.3f}")
    write_json(out / "results.json", {"resolution": n, "steps": args.steps, "u_max": u_max, "rows": rows,
                                      "c_surrogate": c_surrogate[0].tolist(), "c_exact": c_exact[0].tolist(),
                                      "surrogate_rel_l2_at_optimum": surrogate_error,
                                      "train_seconds": train_seconds})
    figure(grid, f[0], true[0], claimed[0], c_surrogate, c_exact, u_max, out / "control.png")


def figure(grid, f, true, claimed, c_surrogate, c_exact, u_max, path):
    plt = pyplot()

    y = grid.axis_coordinates(1)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), layout="constrained")
    axes[0].plot(y, control_values(grid, c_surrogate)[0], label="through the surrogate")
    axes[0].plot(y, control_values(grid, c_exact)[0], "--", label="through the exact map")
    axes[0].set(title="control g(y) on x = 0", xlabel="y")
    axes[0].legend()
    extent = (0, 1, 0, 1)
    for ax, field, title in ((axes[1], f, "source f"), (axes[2], true, "true u with the surrogate's control"),
                             (axes[3], claimed - true, "surrogate − true")):
        image = ax.imshow(np.asarray(field).T, origin="lower", extent=extent, cmap="RdBu_r" if ax is axes[3] else "viridis")
        fig.colorbar(image, ax=ax)
        ax.set_title(title)
    axes[2].contour(np.asarray(true).T, levels=[u_max], colors="w", extent=extent, origin="lower")
    save_figure(fig, path)
    print(f"figure: {path}")


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
