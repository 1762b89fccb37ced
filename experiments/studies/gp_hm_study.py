"""Experiment (not a test): GP-HM against a plain GP, a PINN and finite differences on GP-HM's
high-frequency and multi-scale problems (pdekit.problems), or on a problem of your own
(``--problems my_module:my_problem``, a box-domain :class:`pdekit.problems.Problem`), all on the
same N collocation points per axis.

  GP-HM-StM / GP-HM-GM   spectral-mixture kernels, Q = 30, μ initialised on 0 … max_frequency
  GP-HM-StM + Matérn     the same with the reference's additive second process (``stm+matern``
                         in --kernels; it takes over after --second-start of the steps)
  GP-SE                  squared-exponential kernel (the plain GP baseline)
  PINN                   tanh MLP d-64-64-64-1, residual by autograd on the same points, boundary
                         weight 200, Adam 1e-3, for the same wall-clock time as the first GP
                         (``--baseline none`` skips it)
  FD                     second-order finite differences on the same N points per axis (linear
                         interpolation to the test points), and on 100,000 (1-D) / 1000² (2-D) points

Settings: GridGP's defaults from the grid and the data for every problem (μ range from the
source's spectrum, which lands on the reference's hand-set freq_scale within 5–10% on its problems;
jitter 10^(−6/d)); N: the reference's for its own problems (REFERENCE_POINTS), else 400 per axis
in 1-D and 200 in 2-D.  Relative L2 on 300 equally spaced test points per
axis: the **final** value, and (separately labelled) the best of 20 evaluations during training,
which is what the reference reports.  The learned frequencies go to a figure.

    python -m experiments.studies.gp_hm_study [--steps 15000] [--problems poisson-1d-sin100,poisson-1d-sin500,poisson-2d-multiscale]
        [--kernels stm,gm,se] [--baseline pinn|none] [--decay 1]
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from experiments.common import parse_list, print_table, problems_argument, refuse, save_figure, write_json
from models.gp_hm.kernels import KINDS
from models.gp_hm.solver import SECOND_KINDS, GridGP, fit
from pdekit.files.figures import pyplot

# the reference's collocation points per axis for its own problems (its config/*.yaml)
REFERENCE_POINTS = {"poisson-1d-sin100": 400, "poisson-1d-xsin200": 400, "poisson-1d-sin6cos100": 400,
                    "poisson-1d-sin500": 400, "poisson-1d-mix": 900, "allen-cahn-1d-sin100": 400,
                    "poisson-2d-sin100": 400, "poisson-2d-multiscale": 200}
DEFAULT_POINTS = {1: 400, 2: 200}
LABELS = {"stm": "GP-HM-StM", "gm": "GP-HM-GM", "se": "GP-SE", "matern": "GP-Matern"}
EVALUATIONS = 20


def method_label(kernel: str, second: str | None) -> str:
    return LABELS[kernel] + ("" if second is None else f" + {LABELS[second].removeprefix('GP-')}")


def parse_kernels(text: str) -> list[tuple[str, str | None]]:
    """``stm,gm,stm+matern`` → [(kernel, second kernel or None), ...]."""
    pairs = []
    for item in parse_list(text, "--kernels"):
        kernel, _, second = item.partition("+")
        if kernel not in KINDS or (second and second not in SECOND_KINDS):
            refuse(f"--kernels: unknown {item} (kernels {', '.join(KINDS)}, optionally +{'/+'.join(SECOND_KINDS)})")
        pairs.append((kernel, second or None))
    return pairs


def train_gp(gp: GridGP, steps: int, decay: float) -> tuple[float, float]:
    """``fit`` with the error evaluated 20 times; (final error, best of the evaluations)."""
    every, done, errors = max(1, steps // EVALUATIONS), [0], []

    def progress():
        done[0] += 1
        if done[0] % every == 0 and done[0] < steps:
            errors.append(gp.relative_error())

    fit(gp, steps, progress=progress, decay=decay)
    final = gp.relative_error()
    return final, min([final, *errors])


def test_grid(problem, n=300):
    axes = [torch.linspace(lo, hi, n, dtype=torch.float64) for lo, hi in problem.bounds]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, problem.dim)


def relative_error(problem, predict) -> float:
    x = test_grid(problem)
    exact = problem.solution(x)
    return float((predict(x) - exact).norm() / exact.norm())


def finite_differences(problem, n: int):
    """−Δu + c u(u² − 1) = f, u = g on the box, second-order central differences on n points per
    axis (Kronecker sum of 1-D second differences), Newton for the Allen–Cahn term; linear
    interpolation to other points."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla
    from scipy.interpolate import RegularGridInterpolator

    axes = [np.linspace(lo, hi, n) for lo, hi in problem.bounds]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, problem.dim)
    xt = torch.as_tensor(grid)
    f, g = problem.source(xt).numpy(), problem.boundary(xt).numpy()
    inner = np.ones([n] * problem.dim, dtype=bool)
    for axis in range(problem.dim):
        index = [slice(None)] * problem.dim
        for end in (0, -1):
            index[axis] = end
            inner[tuple(index)] = False
    inner = inner.ravel()
    second = [sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(n, n)) / (x[1] - x[0]) ** 2 for x in axes]
    eye = sp.identity(n)
    laplacian = second[0] if problem.dim == 1 else sp.kron(second[0], eye) + sp.kron(eye, second[1])
    L = -laplacian.tocsr()
    A, coupling = L[inner][:, inner].tocsc(), L[inner][:, ~inner]
    rhs = f[inner] - coupling @ g[~inner]
    u = spla.spsolve(A, rhs)
    for _ in range(20 if problem.allen_cahn else 0):  # Newton on the cubic term
        c = problem.allen_cahn
        residual = A @ u + c * u * (u**2 - 1) - rhs
        step = spla.spsolve((A + sp.diags(c * (3 * u**2 - 1))).tocsc(), residual)
        u -= step
        if np.abs(step).max() < 1e-13:
            break
    full = g.copy()
    full[inner] = u
    interpolate = RegularGridInterpolator(axes, full.reshape([n] * problem.dim))
    return lambda points: torch.as_tensor(interpolate(points.numpy()))


def pinn(problem, n: int, seconds: float, seed: int = 0):
    """A tanh MLP (64-64-64) on the same grid points, residual by autograd, boundary weight 200,
    Adam 1e-3, for ``seconds`` of wall-clock time."""
    from models.fkpinn import TanhMLP
    from pdekit.problems.autodiff import gradient_and_laplacian

    torch.manual_seed(seed)
    x = test_grid(problem, n)
    on_boundary = problem.signed_distance(x).abs() < 1e-12
    f, ends = problem.source(x), x[on_boundary]
    g = problem.boundary(ends)
    model = TanhMLP(problem.dim, width=64, depth=3, bounds=problem.bounds)  # inputs mapped to [-1, 1]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        xr = x.clone().requires_grad_(True)
        u = model(xr)
        _, d2u = gradient_and_laplacian(u, xr)
        residual = problem.residual(u, d2u, f)
        loss = residual.pow(2).mean() + 200 * (model(ends) - g).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        steps += 1
    return (lambda z: model(z).detach()), steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="poisson-1d-sin100,poisson-1d-sin500,poisson-2d-multiscale",
                        help="registered names or module:object problems of your own")
    parser.add_argument("--points", type=int, default=None, help="per axis (default: the reference's, else 400 in 1-D, "
                                                                 "200 in 2-D)")
    parser.add_argument("--steps", type=int, default=15000)
    parser.add_argument("--components", type=int, default=30)
    parser.add_argument("--max-frequency", type=float, default=None,
                        help="default: from the source's spectrum on the grid (GridGP)")
    parser.add_argument("--kernels", default="stm,gm,se", help="stm, gm, se, matern; kernel+second (e.g. stm+matern) "
                                                               "adds the additive second process")
    parser.add_argument("--second-start", type=float, default=0.01, help="fraction of the steps (reference 0.01)")
    parser.add_argument("--decay", type=float, default=1.0, help="learning rate factor at the last step (1: constant)")
    parser.add_argument("--jitter", type=float, default=None, help="default: 10^(-6/d) (1e-6 in 1-D, 1e-3 in 2-D)")
    parser.add_argument("--baseline", choices=("pinn", "none"), default="pinn",
                        help="pinn: a PINN for the first GP's wall-clock time; none: GPs and FD only")
    parser.add_argument("--out", default="experiments/results/gp_hm_study")
    args = parser.parse_args()
    problems = problems_argument(args.problems)
    kernels = parse_kernels(args.kernels)
    if args.steps < 1 or not 0 < args.decay <= 1 or not 0 <= args.second_start < 1:
        refuse("need --steps >= 1, --decay in (0, 1] and --second-start in [0, 1)")
    for name, problem in problems.items():
        if not problem.is_box or problem.exact is None:
            refuse(f"--problems: {name} needs a box domain and an exact solution (GP-HM's grid; the error)")
    out = Path(args.out)
    rows, learned = [], {}
    for name, problem in problems.items():
        points = args.points or REFERENCE_POINTS.get(name, DEFAULT_POINTS.get(problem.dim, 50))
        gp_seconds = None
        for kernel, second in kernels:
            torch.manual_seed(0)
            try:
                gp = GridGP(problem, points, kernel, args.components, args.max_frequency, jitter=args.jitter,
                            second_kernel=second, second_start=args.second_start)
            except ValueError as err:
                refuse(str(err))
            start = time.perf_counter()
            final, best = train_gp(gp, args.steps, args.decay)
            seconds = time.perf_counter() - start
            gp_seconds = gp_seconds or seconds
            label = method_label(kernel, second)
            rows.append({"problem": name, "method": label, "points": f"{points}^{problem.dim}", "rel L2": final,
                         "best of 20 (ref.)": best, "seconds": seconds})
            if kernel in ("stm", "gm"):
                learned[f"{name} {label}"] = [t.tolist() for t in gp.frequencies()[0]]
            print(rows[-1], flush=True)
        if args.baseline == "pinn":
            predict, steps = pinn(problem, points, gp_seconds)
            rows.append({"problem": name, "method": f"PINN ({steps} steps)", "points": f"{points}^{problem.dim}",
                         "rel L2": relative_error(problem, predict), "best of 20 (ref.)": None, "seconds": gp_seconds})
        for n in (points, 100_000 if problem.dim == 1 else 1000):
            start = time.perf_counter()
            predict = finite_differences(problem, n)
            rows.append({"problem": name, "method": "FD", "points": f"{n}^{problem.dim}", "rel L2": relative_error(
                problem, predict), "best of 20 (ref.)": None, "seconds": time.perf_counter() - start})
        print(rows[-2:], flush=True)
    print_table(f"GP-HM study: {args.steps} Adam steps (lr 0.01, decay to {args.decay:g}×), Q = {args.components}; "
                "final relative L2 on 300 test points per axis", rows)
    write_json(out / "results.json", {"rows": rows, "frequencies": learned, "steps": args.steps})
    if learned:
        _figure(learned, out / "gp_hm_frequencies.png")
    print(f"wrote {out}/results.json" + (f" and {out}/gp_hm_frequencies.png" if learned else ""))


# the exact solutions' frequencies in cycles per unit length (dotted lines in the figure)
TRUE_FREQUENCIES = {"poisson-1d-sin100": (100 / (2 * math.pi),), "allen-cahn-1d-sin100": (100 / (2 * math.pi),),
                    "poisson-1d-sin500": (0.0, 500 / (2 * math.pi)), "poisson-1d-xsin200": (200 / (2 * math.pi),),
                    "poisson-1d-sin6cos100": (94 / (2 * math.pi), 106 / (2 * math.pi)),
                    "poisson-2d-multiscale": (14 / (2 * math.pi), 26 / (2 * math.pi)),
                    "poisson-2d-sin100": (100 / (2 * math.pi),)}


def _figure(learned, path):
    plt = pyplot()

    fig, axes = plt.subplots(1, len(learned), figsize=(4.2 * len(learned), 3.4), squeeze=False, layout="constrained")
    for ax, (label, (frequency, weight)) in zip(axes[0], learned.items()):
        ax.stem(frequency, weight)
        ax.set(xlabel="frequency μ_q (cycles per unit)", ylabel="weight w_q", yscale="log", title=label)
        for true in TRUE_FREQUENCIES.get(label.split()[0], ()):
            ax.axvline(true, color="grey", ls=":", lw=0.8)
    save_figure(fig, path)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
