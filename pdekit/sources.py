"""Families of Poisson right-hand sides f on a grid, for training data of several kinds.

``draw_source(family, rng, coords)`` returns f on the grid whose node coordinates are ``coords``
(one array per axis, as :meth:`pdekit.grid.Grid.coordinates` gives, in a box scaled to [0, 1]
by its longest side).  Every family but ``constant`` is scaled to ``max |f| = 1`` (the scale is
irrelevant to a solver that is homogeneous in its data, and keeps the families comparable):

* ``fourier``   — 8 random separable modes sin(π k x + φ) (k in 1..``modes`` per axis, normal
  weights): datagen's Poisson source, as every level draws it.
* ``constant``  — f = 1.
* ``smooth``    — a zero-mean Gaussian random field, squared-exponential covariance
  exp(−r²/(4ℓ²)) with ℓ = ``SMOOTH_LENGTH`` of the box (periodic, by FFT).
* ``gaussians`` — 1–4 point-like sources Σ a_i exp(−|x − c_i|²/(2σ²)), σ = ``GAUSSIAN_WIDTH``,
  centres uniform in [0.1, 0.9]^d, signed amplitudes with ``|a_i|`` uniform in [0.5, 1].
* ``piecewise`` — constant on the Voronoi cells of 2–6 random seeds, values uniform in [−1, 1].
"""
from __future__ import annotations

import numpy as np

SOURCE_FAMILIES = ("fourier", "constant", "smooth", "gaussians", "piecewise")
SMOOTH_LENGTH = 0.1
GAUSSIAN_WIDTH = 0.03
GAUSSIAN_COUNT = (1, 4)
PIECEWISE_CELLS = (2, 6)


def _unit(f: np.ndarray) -> np.ndarray:
    return f / (np.abs(f).max() + 1e-12)


def fourier_source(rng, coords, modes: int) -> np.ndarray:
    dim = len(coords)
    axes = [c[(0,) * d + (slice(None),) + (0,) * (dim - d - 1)] for d, c in enumerate(coords)]  # 1-D per axis
    f = np.zeros(coords[0].shape)
    for _ in range(8):
        k = rng.integers(1, modes + 1, size=dim)
        phase = rng.uniform(0, 2 * np.pi, size=dim)
        factors = [np.sin(np.pi * kk * x + ph) for kk, x, ph in zip(k, axes, phase)]
        term = factors[0]
        for factor in factors[1:]:  # outer products: d 1-D sines instead of d full-grid ones
            term = np.multiply.outer(term, factor)
        f += rng.standard_normal() * term
    return _unit(f)


def gaussian_random_field(rng, shape, length: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with squared-exponential correlation
    (``length`` in units of the box; periodic)."""
    noise = rng.standard_normal(shape)
    freqs = np.meshgrid(*(np.fft.fftfreq(n) * n for n in shape), indexing="ij")
    k2 = sum(f**2 for f in freqs)
    field = np.real(np.fft.ifftn(np.fft.fftn(noise) * np.exp(-0.5 * k2 * (2 * np.pi * length) ** 2)))
    return (field - field.mean()) / (field.std() + 1e-12)


def _gaussians(rng, coords) -> np.ndarray:
    f = np.zeros(coords[0].shape)
    for _ in range(int(rng.integers(GAUSSIAN_COUNT[0], GAUSSIAN_COUNT[1] + 1))):
        centre = rng.uniform(0.1, 0.9, size=len(coords))
        amplitude = rng.uniform(0.5, 1.0) * rng.choice((-1.0, 1.0))
        f += amplitude * np.exp(-sum((c - m) ** 2 for c, m in zip(coords, centre)) / (2 * GAUSSIAN_WIDTH**2))
    return _unit(f)


def _piecewise(rng, coords) -> np.ndarray:
    count = int(rng.integers(PIECEWISE_CELLS[0], PIECEWISE_CELLS[1] + 1))
    seeds = rng.uniform(0.0, 1.0, size=(count, len(coords)))
    values = rng.uniform(-1.0, 1.0, size=count)
    distance = np.stack([sum((c - s) ** 2 for c, s in zip(coords, seed)) for seed in seeds])
    return _unit(values[np.argmin(distance, axis=0)])


def draw_source(family: str, rng, coords, modes: int = 8) -> np.ndarray:
    """f of ``family`` on the nodes ``coords`` (see the module doc); ``modes``: ``fourier``'s highest mode."""
    if family == "fourier":
        return fourier_source(rng, coords, modes)
    if family == "constant":
        return np.ones(coords[0].shape)
    if family == "smooth":
        return _unit(gaussian_random_field(rng, coords[0].shape, SMOOTH_LENGTH))
    if family == "gaussians":
        return _gaussians(rng, coords)
    if family == "piecewise":
        return _piecewise(rng, coords)
    raise ValueError(f"unknown source family {family!r}; choose from {', '.join(SOURCE_FAMILIES)}")
