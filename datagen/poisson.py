"""Poisson problems at named difficulty levels: sample (geometry, coefficient, source, boundary
conditions), solve with pdekit's own operator, return the arrays of the dataset contract.

Levels are points along four axes (see ``LEVELS``); each sample is a pure function of
``(level, resolution, dim, seed)``, so workers and shards cannot change the data.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from datagen import levelspec
from pdekit.sources import SOURCE_FAMILIES, draw_source, gaussian_random_field


@dataclass(frozen=True)
class Level:
    name: str
    obstacles: tuple[int, int]  # min, max number of obstacles
    channels: bool  # thin walls with gaps (channels)
    coefficient: str  # "constant" | "lognormal" | "piecewise"
    contrast: float  # max/min of the coefficient (piecewise, darcy)
    source_modes: int  # highest Fourier mode of the source per axis
    neumann_faces: int  # number of box faces with Neumann conditions
    neumann_obstacles: bool  # Neumann (insulated) obstacle walls instead of Dirichlet
    description: str
    source: str = "fourier"  # a family of pdekit.sources: "fourier" (random modes up to source_modes), "constant" (f = 1), ...

    def problems(self):
        checks = [(0 <= self.obstacles[0] <= self.obstacles[1], "obstacles must be [min, max] with 0 <= min <= max"),
                  (self.coefficient in COEFFICIENTS, f"coefficient must be one of {COEFFICIENTS}"),
                  (self.source in SOURCES, f"source must be one of {SOURCES}"),
                  (self.obstacles[1] <= MAX_OBSTACLES, f"at most {MAX_OBSTACLES} obstacles"),
                  # beyond ~1e8 the float64 solve cannot reach the 1e-10 residual the files promise
                  (1 <= self.contrast <= MAX_CONTRAST, f"contrast must be in [1, {MAX_CONTRAST:g}]"),
                  (1 <= self.source_modes <= MAX_SOURCE_MODES, f"source_modes must be in 1..{MAX_SOURCE_MODES}"),
                  (0 <= self.neumann_faces <= 3, "neumann_faces must be 0..3 (one face stays Dirichlet)")]
        return [message for ok, message in checks if not ok]


COEFFICIENTS = ("constant", "lognormal", "piecewise", "darcy")
SOURCES = SOURCE_FAMILIES
DARCY_LOW = 3.0  # the FNO benchmark's permeabilities are 3 and 12 (contrast 4)
MAX_OBSTACLES, MAX_CONTRAST, MAX_SOURCE_MODES = 64, 1e8, 1024
PLACEMENT_TRIES = 50

LEVELS = {
    "easy": Level("easy", (0, 0), False, "constant", 1.0, 3, 0, False,
                  "full box, a = 1, smooth low-frequency source, Dirichlet"),
    "medium": Level("medium", (1, 3), False, "lognormal", 1.0, 8, 1, False,
                    "1-3 holes, smooth log-normal a (sigma 1.5), multi-scale source, one Neumann face"),
    "hard": Level("hard", (4, 8), False, "piecewise", 1e3, 16, 2, True,
                  "4-8 obstacles, piecewise a (contrast 1e3), high-frequency source, 2 Neumann faces, insulated walls"),
    "extreme": Level("extreme", (10, 20), True, "piecewise", 1e4, 32, 3, True,
                     "10-20 obstacles drawn (8-14 fit without touching) + thin channels, channelized a (contrast 1e4), "
                     "broadband source, 3 Neumann faces"),
    # the operator-learning benchmark (FNO, LSM): -div(a grad u) = 1 on the box, u = 0 on its boundary
    "darcy": Level("darcy", (0, 0), False, "darcy", 4.0, 1, 0, False,
                   "FNO/LSM Darcy benchmark: a in {3, 12} from a thresholded Gaussian random field, f = 1, u = 0",
                   source="constant"),
}


DIFFICULTY_LADDER = ("easy", "medium", "hard", "extreme")  # darcy is a benchmark level beside it


def level_from_dict(spec: dict, source: str = "spec") -> Level:
    """A level from explicit axis values (the keys of :class:`Level`); errors name the bad key."""
    return levelspec.from_dict(Level, LEVELS, spec, source)


def load_level_spec(path) -> Level:
    """Read a level from YAML (safe loader)."""
    return levelspec.load(Level, LEVELS, path)


def resolve_level(level) -> Level:
    return levelspec.resolve(LEVELS, level)


def darcy_field(rng, shape, contrast: float = 4.0, alpha: float = 2.0, tau: float = 3.0):
    """The FNO Darcy benchmark's permeability: a Gaussian random field with covariance
    ``(−Δ + τ²)^(−α)`` (FNO's ``GaussianRF``, here periodic on the unit box), ``3 · contrast``
    (12) where it is ≥ 0 and 3 elsewhere."""
    freqs = np.meshgrid(*(np.fft.fftfreq(n) * n for n in shape), indexing="ij")
    amplitude = (4 * np.pi**2 * sum(f**2 for f in freqs) + tau**2) ** (-alpha / 2)
    amplitude.flat[0] = 0.0  # zero mean, as FNO's field
    field = np.real(np.fft.ifftn(np.fft.fftn(rng.standard_normal(shape)) * amplitude))
    return np.where(field >= 0, DARCY_LOW * contrast, DARCY_LOW)


def _coefficient(level, rng, coords, shape):
    if level.coefficient == "constant":
        return np.ones(shape)
    if level.coefficient == "darcy":
        return darcy_field(rng, shape, level.contrast)
    field = gaussian_random_field(rng, shape, 0.1)
    if level.coefficient == "lognormal":
        return np.exp(1.5 * field)
    high = field > 0.3 if not level.channels else np.abs(gaussian_random_field(rng, shape, 0.05)) < 0.25
    return np.where(high, level.contrast, 1.0)


def _source(level, rng, coords):
    """Sum of 8 random separable Fourier modes, scaled to max |f| = 1 (or f = 1): pdekit.sources."""
    return draw_source(level.source, rng, coords, level.source_modes)


def _mask(level, rng, coords, shape):
    """Obstacles (discs and boxes) placed so that their bounding circles do not touch, so the
    drawn count is the count a user sees; an obstacle that finds no room in ``PLACEMENT_TRIES``
    draws is left out (only in the most crowded level, extreme: 8-14 of its 10-20 draws fit)."""
    mask = np.ones(shape, bool)
    placed = []  # (centre, bounding radius)
    dim = len(coords)
    for _ in range(int(rng.integers(level.obstacles[0], level.obstacles[1] + 1))):
        for _ in range(PLACEMENT_TRIES):
            centre = rng.uniform(0.15, 0.85, size=dim)
            size = rng.uniform(0.04, 0.12)
            disc = rng.random() < 0.5
            half = np.full(dim, size) if disc else size * rng.uniform(0.5, 1.5, size=dim)
            radius = size if disc else float(np.linalg.norm(half))
            if all(np.linalg.norm(centre - c) > radius + r + 0.02 for c, r in placed):
                break
        else:
            continue
        placed.append((centre, radius))
        if disc:
            inside = sum((c - m) ** 2 for c, m in zip(coords, centre)) < size**2
        else:
            inside = np.all([np.abs(c - m) < h for c, m, h in zip(coords, centre, half)], axis=0)
        mask &= ~inside
    if level.channels:  # thin walls across the domain with one gap each
        n = shape[0]
        for _ in range(3):
            i = int(rng.integers(n // 8, n - n // 8))
            gap = int(rng.integers(0, shape[1] - 3))
            wall = np.zeros(shape, bool)
            wall[i] = True
            wall[i, gap:gap + 3] = False
            mask &= ~wall
    return mask


def sample_problem(level, resolution: int, dim: int, seed: int):
    """(grid, coefficient, mask, bc, f) of one sample (``level``: a name or a :class:`Level`);
    deterministic in its arguments."""
    from pdekit import BoundaryConditions, DiffusionOperator, Dirichlet, Grid, Neumann  # here: level errors answer fast

    level = resolve_level(level)
    rng = np.random.default_rng([seed, resolution, dim, zlib.crc32(level.name.encode())])
    shape = (resolution,) * dim
    # the Neumann faces are fixed per level (not drawn), so every sample of a file shares one grid
    faces = {name: Neumann(0.0) for name in ("x+", "y+", "x-", "y-")[: level.neumann_faces]}
    bc = BoundaryConditions(default=Dirichlet(0.0), faces=faces,
                            obstacle=Neumann(0.0) if level.neumann_obstacles else Dirichlet(0.0))
    grid = Grid.box(shape, 1.0, bc)
    coords = grid.coordinates()
    a = _coefficient(level, rng, coords, shape)
    mask = _mask(level, rng, coords, shape)
    f = _source(level, rng, coords)
    # regions cut off from every Dirichlet boundary would make the system singular: drop them
    probe = DiffusionOperator(grid, a, mask, bc, singular="pin")
    mask &= probe.floating_regions[0] == 0
    return grid, a, mask, bc, f


# Relative residual 1e-10 is below what float64 can represent for some systems: with contrast
# 1e4 at 256^2, rounding the exact solution to float64 alone leaves ~1e-8 (error ~ eps*|A||u|).
# Such a sample is accepted only if its normwise backward error shows it is solved to working
# precision; both numbers are stored.
BACKWARD_ERROR_FLOOR = 1e-14


def normwise_backward_error(A, x: np.ndarray, b: np.ndarray, relative_residual: float) -> float:
    """``||b - A x|| / (||A||_inf ||x|| + ||b||)`` from the relative residual ``||b - A x|| / ||b||``."""
    norm_a, norm_b = float(abs(A).sum(axis=1).max()), float(np.linalg.norm(b))
    return relative_residual * norm_b / (norm_a * float(np.linalg.norm(x)) + norm_b)


def _choose_direct(n: int, dim: int) -> bool:
    """Sparse LU beats AMG-PCG in 2D up to ~512^2 (nested dissection); in 3D fill-in makes LU
    slow beyond ~20^3 (measured: 32^3 LU 4.3 s vs AMG-PCG 0.3 s)."""
    return n <= (300_000 if dim <= 2 else 8_000)


def solve_sample(level, resolution: int, dim: int, seed: int, tol: float = 1e-10, *, solver: str = "auto",
                 omega: float | None = None) -> dict:
    """Sample and solve one problem; raises if the solve did not converge (see
    ``BACKWARD_ERROR_FLOOR`` for systems whose float64 floor lies above ``tol``).  ``solver``:
    ``auto`` (sparse LU where it is fastest, else AMG-PCG), ``ssor-pcg`` with relaxation
    ``omega`` (recorded in the sample), or always ``cg`` (unpreconditioned) or ``amg-pcg`` — the
    iterative ones make the recorded cost grow with difficulty, as in the usual data pipelines (a
    CG or SSOR-PCG solve that stalls above ``tol`` is finished by AMG-PCG, its time included)."""
    level = resolve_level(level)
    t0 = time.perf_counter()
    grid, a, mask, bc, f = sample_problem(level, resolution, dim, seed)
    sample_seconds = time.perf_counter() - t0
    try:
        solved = solve_problem(grid, a, mask, bc, f, tol, solver=solver, omega=omega)
    except RuntimeError as err:
        raise RuntimeError(f"{level.name} sample seed={seed}: {err}") from None
    return {**solved, "level": level.name, "seed": seed, "sample_seconds": sample_seconds}


def solve_problem(grid, a, mask, bc, f, tol: float = 1e-10, *, solver: str = "auto", omega: float | None = None) -> dict:
    """Solve one problem given by its arrays (``grid``, coefficient ``a``, active ``mask``, boundary
    conditions ``bc``, source ``f``) as :func:`solve_sample` does: the arrays a dataset file stores
    for it (without ``level`` and ``seed``)."""
    import scipy.sparse.linalg as spla
    import torch

    from pdekit import DiffusionOperator
    from pdekit.krylov import pcg
    from pdekit.precond import AMG, SSOR

    dim = grid.ndim
    op = DiffusionOperator(grid, a, mask, bc)
    b = op.rhs(f)
    t0 = time.perf_counter()
    layout = op.layout()
    A = op.to_sparse()
    bv = layout.to_vectors(b).numpy()
    if solver in ("ssor-pcg", "cg", "amg-pcg"):
        preconditioner = {"ssor-pcg": lambda: SSOR(op, omega), "cg": lambda: None, "amg-pcg": lambda: AMG(op)}[solver]()
        # (pcg confirms convergence on the true residual; 4n iterations, 4x what exact arithmetic
        # needs, separate a slow solve from a stalled one)
        res = pcg(op, b, preconditioner, tol=tol, maxiter=4 * layout.n)
        u, iterations = res.x, int(res.iterations)
        if not bool(res.converged) and solver != "amg-pcg":
            # plain CG can stall near 1e-8 on contrast-1e3 systems: AMG-PCG finishes from where it
            # stopped, and its time counts in the recorded cost like the rest of the solve
            res = pcg(op, b, AMG(op), x0=u, tol=tol, maxiter=500)
            u, iterations = res.x, iterations + int(res.iterations)
        x = layout.to_vectors(u).numpy()
    elif _choose_direct(layout.n, dim):  # sparse LU plus iterative refinement
        lu = spla.splu(A.tocsc())
        x = lu.solve(bv)
        for _ in range(3):  # one LU solve can stop just above 1e-10 at high contrast
            r = bv - A @ x
            if np.linalg.norm(r) <= tol * np.linalg.norm(bv):
                break
            x = x + lu.solve(r)
        u = layout.to_fields(torch.as_tensor(x))
        iterations = 0
    else:
        res = pcg(op, b, AMG(op), tol=tol, maxiter=500)
        u, iterations = res.x, int(res.iterations)
        x = layout.to_vectors(u).numpy()
    solve_seconds = time.perf_counter() - t0
    residual = float(op.relative_residual(u, b))  # judged by the operator the file's readers rebuild
    backward_error = normwise_backward_error(A, x, bv, residual)
    if not (residual <= tol or backward_error <= BACKWARD_ERROR_FLOOR):
        raise RuntimeError(f"solve reached relative residual {residual:.2e} > {tol} "
                           f"(backward error {backward_error:.1e})")
    return {"a": a, "f": f, "u": u.numpy(), "mask": op.mask[0], "bc_type": op.bc_type[0],
            "bc_value": op.bc_value[0], "solver_iterations": iterations,
            "solver_residual": residual, "solver_backward_error": backward_error, "solve_seconds": solve_seconds,
            "grid": grid,
            **({"omega": float(omega)} if solver == "ssor-pcg" else {})}
