"""``pdekit evaluate`` for solvers of one analytic problem (GP-HM, FK-PINN checkpoints): the
relative L2 error against the exact (or reference) solution at held-out points, the RMS of the
PDE residual where the model is differentiable, and a figure — no dataset file needed, the
problem travels in the checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from pdekit.files.atomic import atomic_path
from pdekit.files.figures import pyplot, save_figure
from pdekit.problems import get
from pdekit.problems.autodiff import gradient_and_laplacian

TEST_SEED = 2**40  # held-out points: a stream no training step uses (FK-PINN logs train/rel_l2 on it too)


def evaluate_problem_solver(task, info: dict, out, *, device: str = "cpu", points: int = 4096) -> dict:
    problem = get(info["data"]["problem"])
    task = task.to(device).eval()
    generator = torch.Generator().manual_seed(TEST_SEED)
    x = problem.domain.sample_interior(points, generator).to(device)
    with torch.no_grad():
        prediction = task(x).to(torch.float64)
    exact = problem.solution(x)
    metrics = {"problem": problem.name, "equation": problem.description, "points": points,
               "rel_l2": float((prediction - exact).norm() / exact.norm()),
               "max_abs_error": float((prediction - exact).abs().max())}
    if problem.reference:
        metrics["reference"] = problem.reference
    network = getattr(task, "network", None)
    if network is not None:  # a network: its residual by automatic differentiation
        y = x.detach().requires_grad_(True)
        u = network(y)
        grad, laplacian = gradient_and_laplacian(u, y, create_graph=False)
        residual = problem.residual(u.detach(), laplacian, problem.source(x), grad, x)
        metrics["residual_rms"] = float(residual.pow(2).mean().sqrt())
    metrics = {"checkpoint": info.get("path", ""), "task": info["task"], **metrics}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    _figure(task, problem, x.cpu(), prediction.cpu(), exact.cpu(), out / "solution.png", device)
    return metrics


def _figure(task, problem, x, prediction, exact, path, device):
    plt = pyplot()

    if problem.dim == 1:
        (lo, hi), = problem.bounds
        line = torch.linspace(lo, hi, 2000, dtype=torch.float64)[:, None]
        with torch.no_grad():
            u = task(line.to(device)).cpu()
        fig, axes = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, layout="constrained")
        axes[0].plot(line[:, 0], problem.solution(line), "k", lw=0.8, label="exact")
        axes[0].plot(line[:, 0], u, "C1--", lw=0.8, label="prediction")
        axes[0].legend(fontsize=8)
        axes[1].plot(line[:, 0], u - problem.solution(line), "C3", lw=0.8)
        axes[1].set(xlabel="x", ylabel="prediction − exact")
    elif problem.dim == 2:
        fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
        error = prediction - exact
        lo, hi = float(exact.min()), float(exact.max())
        reach = float(error.abs().max())
        for ax, values, title, kw in ((axes[0], exact, "exact", dict(vmin=lo, vmax=hi)),
                                      (axes[1], prediction, "prediction", dict(vmin=lo, vmax=hi)),
                                      (axes[2], error, "prediction − exact", dict(cmap="RdBu_r", vmin=-reach, vmax=reach))):
            image = ax.scatter(x[:, 0], x[:, 1], c=values, s=4, **kw)
            ax.set(title=title, aspect="equal", xlabel="x", ylabel="y")
            fig.colorbar(image, ax=ax)
    else:
        fig, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
        ax.plot(exact, prediction, ".", ms=2)
        ax.plot([float(exact.min()), float(exact.max())], [float(exact.min()), float(exact.max())], "k:", lw=0.8)
        ax.set(xlabel="exact", ylabel="prediction", title=f"{problem.name} (d = {problem.dim}): held-out points")
    fig.suptitle(f"{problem.name}: {problem.description}", fontsize=9)
    save_figure(fig, path, dpi=80)
