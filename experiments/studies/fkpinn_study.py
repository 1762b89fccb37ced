"""Experiment (not a test): does pointwise Feynman–Kac supervision make PINNs train (FK-PINNs,
arXiv 2606.00643)?  Per problem: the plain PINN (λ = 0) against FK-PINN at several label weights λ
and label counts, same network, steps and collocation; the labels' generation time; for the 2-D
problems a pdekit finite-difference grid solve for comparison; and the conditioning of the
Gauss–Newton matrix JᵀJ of the stacked residuals of a small network with and without the data rows.

    python -m experiments.studies.fkpinn_study [--problems poisson-square-sin4,poisson-ball-10d,schrodinger-square]
                                       [--steps 2000] [--labels 200] [--paths 1000] [--weights 10,1000,100000]
                                       [--baseline pinn|none]

``--problems`` also takes a problem of your own, ``my_module:my_problem`` (a
:class:`pdekit.problems.Problem` with an exact solution); ``--baseline none`` skips the plain PINN.

Final relative L2 at 2000 held-out interior points (the final model, never the best over epochs).
Writes experiments/results/fkpinn_study/results.json and figures (error curves, JᵀJ spectra).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from experiments.common import make_data, print_table, problems_argument, pyplot, refuse, save_figure, write_json


def make_labels(problem, count: int, paths: int, path: Path) -> float:
    """Walk-on-spheres labels at ``count`` uniform interior points (seed 0) by ``datagen
    feynman-kac``; returns the seconds its walks took (the file's per-label ``seconds``)."""
    import h5py

    path.unlink(missing_ok=True)  # the study's own labels file: made anew for this count
    make_data(path, ["feynman-kac", "--problem", problem.name, "--n", count, "--paths", paths])
    with h5py.File(path) as h5:
        return float(np.sum(h5["seconds"][()]))


def train(problem, labels_path, label_weight: float, max_labels: int, steps: int, collocation: int, seed: int = 0):
    """One FK-PINN run through Lightning (the product's path); returns (final rel L2, seconds, curve)."""
    import lightning as L

    from models.fkpinn import FKPINN
    from pdekit.learning.datamodules import ProblemDataModule

    class Curve(L.Callback):
        def __init__(self):
            self.points = []

        def on_train_epoch_end(self, trainer, module):
            self.points.append((trainer.global_step, module.relative_error()))

    torch.manual_seed(seed)
    data = ProblemDataModule(problem.name, steps_per_epoch=100, labels=str(labels_path), max_labels=max_labels)
    model = FKPINN(width=64, depth=4, collocation=collocation, boundary_points=200, label_weight=label_weight,
                   lr=1e-3, seed=seed, dim=problem.dim, in_channels=problem.dim)
    curve = Curve()
    trainer = L.Trainer(max_epochs=max(1, steps // 100), accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[curve])
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    return model.relative_error(), time.perf_counter() - start, curve.points


def grid_solve(problem, n: int):
    """pdekit's finite-difference operator (−Δ, Dirichlet g on the ghost layer; + V on the diagonal)
    on n² interior nodes of the unit square, sparse direct solve; (rel L2 at the nodes, seconds)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from pdekit import DiffusionOperator, Grid
    from pdekit.boundary import BoundaryConditions, Dirichlet

    start = time.perf_counter()
    h = 1.0 / (n + 1)
    grid = Grid((n, n), spacing=h, origin=h)

    def g(x, y):
        return problem.boundary(torch.as_tensor(np.stack([x, y], -1).reshape(-1, 2))).numpy().reshape(x.shape)

    op = DiffusionOperator(grid, bc=BoundaryConditions(default=Dirichlet(g)))
    x = torch.as_tensor(np.stack(np.meshgrid(*[h * np.arange(1, n + 1)] * 2, indexing="ij"), -1).reshape(-1, 2))
    f = problem.source(x).numpy().reshape(n, n)
    A = op.to_sparse() + problem.reaction * sp.identity(n * n, format="csr")
    b = op.layout().to_vectors(op.rhs(f)).numpy()
    u = spla.spsolve(A.tocsc(), b)
    seconds = time.perf_counter() - start
    exact = problem.solution(x).numpy()
    return float(np.linalg.norm(u - exact) / np.linalg.norm(exact)), seconds


# ------------------------------------------------------------------------------ conditioning
def gauss_newton_spectrum(problem, label_points, label_weight: float, params=None, width=16, depth=2, seed=0):
    """Eigenvalues of JᵀJ for the stacked residual vector of a small tanh MLP: residual rows
    R(u)(x_c)/√N_c at 512 collocation points, boundary rows √(β/N_b)(u − g) at 64 points (β = 10),
    and (λ > 0) data rows √(λ/M)(u(x_i) − ŷ_i) at the label points."""
    from torch.func import functional_call, hessian, jacrev, vmap

    from models.fkpinn import TanhMLP

    torch.manual_seed(seed)
    net = TanhMLP(problem.dim, width, depth, problem.bounds)
    if params is not None:
        net.load_state_dict(params)
    theta = {k: v.detach() for k, v in net.named_parameters()}
    buffers = dict(net.named_buffers())
    g = torch.Generator().manual_seed(1)
    xc, xb = problem.domain.sample_interior(512, g), problem.domain.sample_boundary(64, g)

    def u(theta, x):
        return functional_call(net, (theta, buffers), (x[None],))[0]

    def residual(theta, x):
        lap = torch.diagonal(hessian(u, argnums=1)(theta, x)).sum()
        value = u(theta, x)
        return -problem.diffusion * lap + problem.reaction * value

    def flat(jac):
        return torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], 1)

    rows = [flat(vmap(jacrev(residual), in_dims=(None, 0))(theta, xc)) / math.sqrt(len(xc)),
            flat(vmap(jacrev(u), in_dims=(None, 0))(theta, xb)) * math.sqrt(10.0 / len(xb))]
    if label_weight > 0:
        rows.append(flat(vmap(jacrev(u), in_dims=(None, 0))(theta, label_points)) * math.sqrt(label_weight / len(label_points)))
    J = torch.cat(rows)
    return torch.linalg.svdvals(J) ** 2  # eigenvalues of JᵀJ, descending (accurate far below eigvalsh on JᵀJ)


def pretrain_small(problem, steps: int, width=16, depth=2, seed=0):
    """The small network after ``steps`` Adam steps of the plain PINN loss (a mid-training state)."""
    from models.fkpinn import TanhMLP, pinn_terms

    torch.manual_seed(seed)
    net = TanhMLP(problem.dim, width, depth, problem.bounds)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(steps):
        g = torch.Generator().manual_seed(step)
        residual, boundary, _ = pinn_terms(net, problem, problem.domain.sample_interior(256, g),
                                           problem.domain.sample_boundary(64, g))
        loss = residual + 10 * boundary
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net.state_dict()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="poisson-square-sin4,poisson-ball-10d,schrodinger-square")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--few-labels", type=int, default=50)
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--weights", default="10,1000,100000")
    parser.add_argument("--baseline", choices=("pinn", "none"), default="pinn",
                        help="pinn: also train the plain PINN (λ = 0); none: FK-PINN runs only")
    parser.add_argument("--out", default="experiments/results/fkpinn_study")
    args = parser.parse_args()
    problems = problems_argument(args.problems)  # unknown names: one line, nothing made
    for name, problem in problems.items():
        if problem.exact is None:
            refuse(f"--problems: {name} has no exact solution to measure the error against")
    try:
        weights = [float(w) for w in args.weights.split(",")]
    except ValueError:
        refuse(f"--weights are comma-separated numbers, got {args.weights!r}")
    if min(args.steps, args.labels, args.few_labels) < 1 or args.paths < 2:
        refuse("need --steps, --labels, --few-labels >= 1 and --paths >= 2")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, curves, spectra = [], {}, {}
    for name, problem in problems.items():
        labels_path = out / f"labels_{name}.h5"
        label_seconds = make_labels(problem, args.labels, args.paths, labels_path)
        collocation = 500 if problem.dim > 5 else 1000
        runs = ([(0.0, 0)] if args.baseline == "pinn" else []) + [(w, args.labels) for w in weights] + \
            [(weights[len(weights) // 2], args.few_labels)]
        for weight, count in runs:
            error, seconds, curve = train(problem, labels_path, weight, count or None, args.steps, collocation)
            label = "PINN" if weight == 0 else f"FK-PINN λ={weight:g}, {count} labels"
            share = label_seconds * count / args.labels
            rows.append({"problem": name, "method": label, "rel L2": error, "train s": seconds,
                         "labels s": share})
            curves[f"{name} | {label}"] = curve
            print(rows[-1], flush=True)
        if problem.dim == 2 and problem.is_box:
            for n in (32, 128, 512):
                error, seconds = grid_solve(problem, n)
                rows.append({"problem": name, "method": f"FD grid {n}² (pdekit operator, direct)", "rel L2": error,
                             "train s": seconds, "labels s": 0.0})
        spectra[name] = conditioning(problem, labels_path, weights)
    print_table(f"FK-PINN study: {args.steps} Adam steps (lr 1e-3), tanh MLP 4×64, {args.paths} walk-on-spheres paths "
                "per label; final relative L2 at 2000 held-out points", rows)
    kappa_rows = [{"problem": p, "state": s, "λ": lam, "κ(JᵀJ)": k, "λ_min": lo, "λ_max": hi}
                  for p, by_state in spectra.items() for s, by_weight in by_state.items()
                  for lam, (k, lo, hi, _) in by_weight.items()]
    print_table("Gauss–Newton conditioning (tanh MLP 2×16; 512 collocation + 64 boundary rows, + the data rows)",
                kappa_rows)
    write_json(out / "results.json", {"rows": rows, "curves": curves, "conditioning": kappa_rows})
    _figures(curves, spectra, out)


def conditioning(problem, labels_path, weights):
    import h5py

    with h5py.File(labels_path) as h5:
        points = torch.as_tensor(h5["points"][()][:50])
    mid = pretrain_small(problem, 1000)
    # (at initialisation the spectrum's small end sits at round-off, 1e-30 and below, for every λ:
    # no condition number to compare; after 1000 plain-PINN steps JᵀJ has full numerical rank)
    result = {"after 1000 PINN steps": {}}
    for weight in [0.0] + sorted(set(weights) | {1000.0}):
        eigen = gauss_newton_spectrum(problem, points, weight, mid)
        result["after 1000 PINN steps"][weight] = (float(eigen[0] / eigen[-1]), float(eigen[-1]), float(eigen[0]),
                                                    eigen.tolist())
    return result


def _figures(curves, spectra, out):
    plt = pyplot()

    problems = list(spectra)
    fig, axes = plt.subplots(2, len(problems), figsize=(4.6 * len(problems), 7.2), squeeze=False, layout="constrained")
    for column, name in enumerate(problems):
        ax = axes[0, column]
        for key, curve in curves.items():
            if key.startswith(name + " |") and curve:
                steps, errors = zip(*curve)
                ax.semilogy(steps, errors, label=key.split("| ")[1])
        ax.set(title=name, xlabel="Adam step", ylabel="relative L2 (held-out)")
        ax.legend(fontsize=7)
        ax = axes[1, column]
        for weight, (kappa, _, _, eigen) in spectra[name]["after 1000 PINN steps"].items():
            ax.semilogy(eigen, label=f"λ={weight:g}: κ={kappa:.1e}")
        ax.set(xlabel="eigenvalue index", ylabel="eigenvalue of JᵀJ", title="Gauss–Newton spectrum (mid-training)")
        ax.legend(fontsize=7)
    save_figure(fig, out / "fkpinn_study.png")
    print(f"wrote {out}/results.json and {out}/fkpinn_study.png")


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
