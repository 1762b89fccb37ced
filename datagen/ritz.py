"""Ritz-vector training data for DCDM (Kaneda et al. 2023): right-hand sides that over-weight the
low end of the operator's spectrum, where Krylov methods are slowest (spectral bias).

Lanczos with full reorthogonalization on one sampled operator gives Ritz pairs; vectors
``b = sum_j c_j v_j`` with ``c_j ~ N(0, 1)``, multiplied by 9 for the lowest ``low_fraction`` of
the Ritz values, normalized to unit length.  They are written as an ordinary Poisson dataset
(the vector is the source ``f`` with homogeneous boundary data, ``u`` its solution), so every
reader, ``load_system`` and the DCDM task take them as they take any Poisson file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla
import torch
from tqdm import tqdm

from datagen.poisson import resolve_level, sample_problem
from pdekit import DiffusionOperator

GENERATOR_VERSION = "ritz-1"


def lanczos(A, steps: int, seed: int = 0, progress: bool = False):
    """Ritz values (ascending) and vectors ``(n, m)`` of symmetric ``A`` after ``m <= steps``
    Lanczos steps with full reorthogonalization (stops early on an invariant subspace)."""
    n = A.shape[0]
    steps = min(steps, n)
    rng = np.random.default_rng(seed)
    V = np.zeros((n, steps))
    alpha, beta = np.zeros(steps), np.zeros(steps)
    v = rng.standard_normal(n)
    V[:, 0] = v / np.linalg.norm(v)
    m = steps
    bar = tqdm(total=steps, disable=not progress, desc="Lanczos", unit="step")
    for j in range(steps):
        w = A @ V[:, j]
        alpha[j] = V[:, j] @ w
        for _ in range(2):  # twice is enough (Kahan–Parlett)
            w -= V[:, : j + 1] @ (V[:, : j + 1].T @ w)
        beta[j] = np.linalg.norm(w)
        bar.update(1)  # counted before the loop can end (a for-loop bar stops one short on break)
        if j + 1 == steps:
            break
        if beta[j] <= 1e-10 * abs(alpha[j]):  # invariant subspace: the Ritz pairs are exact
            m = j + 1
            bar.total = m
            break
        V[:, j + 1] = w / beta[j]
    bar.close()
    values, S = scipy.linalg.eigh_tridiagonal(alpha[:m], beta[: m - 1])
    return values, V[:, :m] @ S


def ritz_vectors(values, vectors, count: int, seed: int, low_fraction: float = 0.55, weight: float = 9.0):
    """``count`` unit vectors ``sum_j c_j v_j`` (null space, values <= 1e-8 max, dropped)."""
    keep = values > 1e-8 * values.max()
    values, vectors = values[keep], vectors[:, keep]
    c = np.random.default_rng(seed).standard_normal((vectors.shape[1], count))
    c[: int(round(low_fraction * len(values)))] *= weight
    b = vectors @ c
    return (b / np.linalg.norm(b, axis=0)).T


def generate_ritz(level, resolution: int, dim: int, count: int, steps: int, seed: int, progress: bool = True,
                  system=None):
    """Arrays of a Poisson dataset of ``count`` Ritz right-hand sides of one operator: sampled from
    ``level``, or the operator of a stored system ``system = (file, index)`` (any Poisson-format
    file, e.g. the pressure systems of `datagen navier-stokes --pressure-systems`)."""
    if system is not None:
        import h5py

        from pdekit.files.dataset import load_system

        path, index = system
        op, _, _ = load_system(path, index)
        with h5py.File(path) as h5:
            a = h5["a"][index]
        grid, name = op.grid, f"ritz-{Path(path).stem}-{index}"
    else:
        level = resolve_level(level)
        grid, a, mask, bc, _ = sample_problem(level, resolution, dim, seed)
        op = DiffusionOperator(grid, a, mask, bc)
        name = f"ritz-{level.name}"
    A, layout = op.to_sparse(), op.layout()
    values, vectors = lanczos(A, steps, seed, progress)
    B = ritz_vectors(values, vectors, count, seed)
    if np.any(op.bc_value[0] != 0):  # then b = f on the active nodes would not hold
        raise ValueError(f"{name}: the operator has inhomogeneous boundary data; Ritz data needs homogeneous")
    U = spla.splu(A.tocsc()).solve(np.ascontiguousarray(B.T)).T  # one factorization, all right-hand sides
    f = layout.to_fields(torch.as_tensor(B)).numpy()
    u = layout.to_fields(torch.as_tensor(U)).numpy()
    residual = np.linalg.norm(B - (A @ U.T).T, axis=1) / np.linalg.norm(B, axis=1)
    repeat = lambda x: np.broadcast_to(x, (count,) + x.shape)  # noqa: E731
    arrays = {"a": repeat(a), "f": f, "u": u, "mask": repeat(op.mask[0]), "bc_type": repeat(op.bc_type[0]),
              "bc_value": repeat(op.bc_value[0]), "level": np.array([name] * count),
              "seed": np.full(count, seed), "solver_iterations": np.zeros(count, int), "solver_residual": residual,
              "solve_seconds": np.zeros(count), "sample_index": np.arange(count)}
    info = {"ritz_values_min": float(values.min()), "ritz_values_max": float(values.max()), "lanczos_steps": len(values)}
    return arrays, grid, info
