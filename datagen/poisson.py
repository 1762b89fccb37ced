"""Poisson problems at named difficulty levels: sample (geometry, coefficient, source, boundary
conditions), solve with pdekit's own operator, return the arrays of the dataset contract.

Levels are points along four axes (see ``LEVELS``); each sample is a pure function of
``(level, resolution, dim, seed)``, so workers and shards cannot change the data.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as spla
import torch

from pdekit import BoundaryConditions, DiffusionOperator, Dirichlet, Grid, Neumann
from pdekit.krylov import pcg
from pdekit.precond import AMG


@dataclass(frozen=True)
class Level:
    name: str
    obstacles: tuple[int, int]  # min, max number of obstacles
    channels: bool  # thin walls with gaps (channels)
    coefficient: str  # "constant" | "lognormal" | "piecewise"
    contrast: float  # max/min of the coefficient (piecewise)
    source_modes: int  # highest Fourier mode of the source per axis
    neumann_faces: int  # number of box faces with Neumann conditions
    neumann_obstacles: bool  # Neumann (insulated) obstacle walls instead of Dirichlet
    description: str


LEVELS = {
    "easy": Level("easy", (0, 0), False, "constant", 1.0, 3, 0, False,
                  "full box, a = 1, smooth low-frequency source, Dirichlet"),
    "medium": Level("medium", (1, 3), False, "lognormal", 1.0, 8, 1, False,
                    "1-3 holes, smooth log-normal a (sigma 1.5), multi-scale source, one Neumann face"),
    "hard": Level("hard", (4, 8), False, "piecewise", 1e3, 16, 2, True,
                  "4-8 obstacles, piecewise a (contrast 1e3), high-frequency source, 2 Neumann faces, insulated walls"),
    "extreme": Level("extreme", (10, 20), True, "piecewise", 1e4, 32, 3, True,
                     "10-20 obstacles + thin channels, channelized a (contrast 1e4), broadband source, 3 Neumann faces"),
}


def _grf(rng, shape, length):
    """Zero-mean, unit-variance Gaussian random field with squared-exponential correlation."""
    noise = rng.standard_normal(shape)
    freqs = np.meshgrid(*(np.fft.fftfreq(n) * n for n in shape), indexing="ij")
    k2 = sum(f**2 for f in freqs)
    field = np.real(np.fft.ifftn(np.fft.fftn(noise) * np.exp(-0.5 * k2 * (2 * np.pi * length) ** 2)))
    return (field - field.mean()) / (field.std() + 1e-12)


def _coefficient(level, rng, coords, shape):
    if level.coefficient == "constant":
        return np.ones(shape)
    field = _grf(rng, shape, 0.1)
    if level.coefficient == "lognormal":
        return np.exp(1.5 * field)
    high = field > 0.3 if not level.channels else np.abs(_grf(rng, shape, 0.05)) < 0.25
    return np.where(high, level.contrast, 1.0)


def _source(level, rng, coords):
    f = np.zeros(coords[0].shape)
    for _ in range(8):
        k = rng.integers(1, level.source_modes + 1, size=len(coords))
        phase = rng.uniform(0, 2 * np.pi, size=len(coords))
        term = np.prod([np.sin(np.pi * kk * c + ph) for kk, c, ph in zip(k, coords, phase)], axis=0)
        f += rng.standard_normal() * term
    return f / (np.abs(f).max() + 1e-12)


def _mask(level, rng, coords, shape):
    mask = np.ones(shape, bool)
    for _ in range(int(rng.integers(level.obstacles[0], level.obstacles[1] + 1))):
        centre = rng.uniform(0.2, 0.8, size=len(coords))
        size = rng.uniform(0.04, 0.12)
        if rng.random() < 0.5:
            inside = sum((c - m) ** 2 for c, m in zip(coords, centre)) < size**2
        else:
            inside = np.all([np.abs(c - m) < size * rng.uniform(0.5, 1.5) for c, m in zip(coords, centre)], axis=0)
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


def sample_problem(level_name: str, resolution: int, dim: int, seed: int):
    """(grid, coefficient, mask, bc, f) of one sample; deterministic in its arguments."""
    level = LEVELS[level_name]
    rng = np.random.default_rng([seed, resolution, dim, list(LEVELS).index(level_name)])
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


def solve_sample(level_name: str, resolution: int, dim: int, seed: int, tol: float = 1e-10) -> dict:
    """Sample and solve one problem; raises if the solve does not converge."""
    t0 = time.perf_counter()
    grid, a, mask, bc, f = sample_problem(level_name, resolution, dim, seed)
    op = DiffusionOperator(grid, a, mask, bc)
    b = op.rhs(f)
    sample_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    if op.layout().n <= 20000:  # small: sparse direct solve plus iterative refinement
        layout = op.layout()
        A, bv = op.to_sparse(), layout.to_vectors(b).numpy()
        lu = spla.splu(A.tocsc())
        x = lu.solve(bv)
        for _ in range(3):  # high contrast: one LU solve can stop just above 1e-10
            r = bv - A @ x
            if np.linalg.norm(r) <= tol * np.linalg.norm(bv):
                break
            x = x + lu.solve(r)
        u = layout.to_fields(torch.as_tensor(x))
        iterations = 0
    else:
        res = pcg(op, b, AMG(op), tol=tol, maxiter=2000)
        u, iterations = res.x, int(res.iterations)
    residual = float(op.relative_residual(u, b))
    if not residual <= tol:
        raise RuntimeError(f"{level_name} sample seed={seed}: solve reached relative residual {residual:.2e} > {tol}")
    return {"a": a, "f": f, "u": u.numpy(), "mask": op.mask[0], "bc_type": op.bc_type[0],
            "bc_value": op.bc_value[0], "level": level_name, "seed": seed, "solver_iterations": iterations,
            "solver_residual": residual, "solve_seconds": time.perf_counter() - t0,
            "sample_seconds": sample_seconds, "grid": grid}

