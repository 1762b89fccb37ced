"""Rollout-stability metrics: plain functions on numpy arrays of snapshots ``(steps, [components,]
*grid)`` (one trajectory), used by ``pdekit evaluate --rollout``, experiments and tests.

* :func:`correlation` — Pearson correlation with the truth per step;
  :func:`time_until_below` — first time it drops below a threshold;
* :func:`energy_spectrum` — radially averaged ``E(k)`` on a periodic grid (1-D, 2-D, 3-D);
  :func:`spectral_error` — relative log-spectrum error, weighted toward high ``k``;
* :func:`invariants` — mean (mass), energy ``½⟨u²⟩``, enstrophy for vorticity, total variation
  (1-D), divergence for 2-D velocity;
* :func:`steepest_gradient` — position and height of the steepest drop (Burgers shocks);
* :func:`blow_up_step` — first step whose values are non-finite or beyond a bound.
"""
from __future__ import annotations

import numpy as np


def _flat(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(a.shape[0], -1)


def correlation(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pearson correlation per step (leading axis); NaN where a field is constant or non-finite."""
    p, t = _flat(prediction), _flat(truth)
    p = p - p.mean(1, keepdims=True)
    t = t - t.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return (p * t).sum(1) / np.sqrt((p * p).sum(1) * (t * t).sum(1))


def relative_l2_per_step(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    p, t = _flat(prediction), _flat(truth)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.linalg.norm(p - t, axis=1) / np.maximum(np.linalg.norm(t, axis=1), 1e-300)


def time_until_below(curve: np.ndarray, threshold: float, times: np.ndarray | None = None) -> float:
    """The time of the first step whose value is below ``threshold`` (NaN counts as below); the
    full horizon (last time) if it never drops."""
    curve = np.asarray(curve, float)
    times = np.arange(1, len(curve) + 1, dtype=float) if times is None else np.asarray(times, float)
    below = ~(curve >= threshold)
    return float(times[np.argmax(below)]) if below.any() else float(times[-1])


def energy_spectrum(field: np.ndarray, dim: int) -> np.ndarray:
    """``E(k)`` for integer shells ``k = 0, 1, ...`` of one snapshot ``([components,] *grid)``:
    ``½ Σ |û|²`` over the wavevectors with ``round(|k|) = k`` (û normalised by the grid size), summed
    over components.  A single mode ``A sin(k₀ x)`` gives ``E(k₀) = A²/4``."""
    field = np.asarray(field, dtype=np.float64)
    if field.ndim == dim:
        field = field[None]
    shape = field.shape[1:]
    transform = np.fft.fftn(field, axes=tuple(range(1, dim + 1))) / np.prod(shape)
    power = 0.5 * (np.abs(transform) ** 2).sum(0)
    waves = np.meshgrid(*(np.fft.fftfreq(n, d=1.0 / n) for n in shape), indexing="ij")
    shells = np.rint(np.sqrt(sum(w**2 for w in waves))).astype(int)
    return np.bincount(shells.ravel(), weights=power.ravel(), minlength=min(shape) // 2 + 1)[: min(shape) // 2 + 1]


def spectral_error(prediction: np.ndarray, truth: np.ndarray, dim: int) -> float:
    """Mean over shells ``k >= 1`` of ``|log10 E_pred(k) − log10 E_true(k)|``: spectral blow-up
    (or over-smoothing) at high ``k`` counts as much as an error at low ``k``."""
    ep, et = energy_spectrum(prediction, dim)[1:], energy_spectrum(truth, dim)[1:]
    tiny = 1e-30
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.mean(np.abs(np.log10(ep + tiny) - np.log10(et + tiny))))


def invariants(snapshots: np.ndarray, dim: int, spacing, names=("u",), vorticity: bool = False) -> dict:
    """Per-step invariants of a trajectory ``(steps, [components,] *grid)``: ``mean`` (mass),
    kinetic ``energy`` ``½⟨|u|²⟩`` (for a 2-D vorticity ω on a periodic box, of the velocity it
    induces: ``½ Σ_k |ω̂_k|² / |k|²``, normalised as the mean over the grid); ``enstrophy``
    ``½⟨ω²⟩`` when the field is a vorticity; ``total_variation`` for 1-D scalars; ``divergence``
    (RMS, periodic central differences) for 2-D vector fields."""
    s = np.asarray(snapshots, dtype=np.float64)
    vector = s.ndim == dim + 2
    axes = tuple(range(1, s.ndim))
    flat_mean_square = (s**2).reshape(len(s), -1).mean(1)
    out = {"mean": s.mean(axis=axes), "energy": 0.5 * flat_mean_square * (s.shape[1] if vector else 1)}
    if vorticity:
        out["enstrophy"] = 0.5 * flat_mean_square
        if dim == 2 and not vector:
            out["energy"] = _energy_from_vorticity(s, spacing)
    if dim == 1 and not vector:
        out["total_variation"] = np.abs(np.diff(s, axis=-1, append=s[..., :1])).sum(-1)
    if vector and dim == 2 and s.shape[1] == 2:
        hx, hy = np.broadcast_to(np.asarray(spacing, float), (2,))
        du = (np.roll(s[:, 0], -1, 1) - np.roll(s[:, 0], 1, 1)) / (2 * hx)
        dv = (np.roll(s[:, 1], -1, 2) - np.roll(s[:, 1], 1, 2)) / (2 * hy)
        out["divergence"] = np.sqrt(((du + dv) ** 2).reshape(len(s), -1).mean(1))
    return out


def _energy_from_vorticity(w: np.ndarray, spacing) -> np.ndarray:
    """½⟨|u|²⟩ of the periodic velocity with vorticity ``w`` (steps, nx, ny): û = i k⊥ ω̂ / |k|²."""
    hx, hy = np.broadcast_to(np.asarray(spacing, float), (2,))
    nx, ny = w.shape[1:]
    kx = 2 * np.pi * np.fft.fftfreq(nx, d=hx)[:, None]
    ky = 2 * np.pi * np.fft.fftfreq(ny, d=hy)[None, :]
    k2 = kx**2 + ky**2
    k2[0, 0] = np.inf  # the mean vorticity carries no velocity on a periodic box
    w_hat = np.fft.fft2(w, norm="ortho")
    return 0.5 * (np.abs(w_hat) ** 2 / k2).reshape(len(w), -1).sum(1) / (nx * ny)


def steepest_gradient(u: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Per step of a 1-D trajectory ``(steps, n)`` on a periodic grid: position (x of the steepest
    negative slope, the shock of a Burgers front) and height (the jump across it, max − min over
    the three cells around it)."""
    u = np.asarray(u, dtype=np.float64)
    slope = (np.roll(u, -1, -1) - u) / spacing
    where = np.argmin(slope, axis=-1)
    n = u.shape[-1]
    rows = np.arange(len(u))
    window = np.stack([u[rows, (where + o) % n] for o in (-1, 0, 1, 2)], 1)
    return (where + 0.5) * spacing, window.max(1) - window.min(1)


def blow_up_step(predictions: np.ndarray, bound: float) -> int | None:
    """First step (1-based) whose values are non-finite or exceed ``bound`` in magnitude; None if none."""
    p = _flat(predictions)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(p).all(1) | (np.nanmax(np.abs(np.where(np.isfinite(p), p, 0.0)), axis=1) > bound)
    return int(np.argmax(bad)) + 1 if bad.any() else None
