"""1-D viscous Burgers u_t + u u_x = nu u_xx on the periodic interval [0, 2 pi): pseudo-spectral
in space (2/3 dealiasing), integrating-factor RK4 in time (the viscous term is integrated
exactly, so stiffness does not limit the step; the nonlinear term is 4th order).  Batched over
trajectories in torch, CPU or CUDA.  Levels along viscosity (smooth fronts -> thin shocks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


class BlowUpError(RuntimeError):
    """A trajectory produced NaN/Inf or grew without bound."""


# Energy fraction in the top third of the resolved wavenumbers above which a trajectory is
# under-resolved (Gibbs oscillations at its fronts).  Measured: resolved levels stay below 1e-12
# (float32 storage), under-resolved ones reach 1e-6 .. 3e-2 (hard at 1024 and 256 points).
SPECTRAL_TAIL_LIMIT = 1e-8


def spectral_tail(u: np.ndarray) -> np.ndarray:
    """Per trajectory ``(batch, time, n)``: the largest, over snapshots, energy fraction in the
    top third of the resolved wavenumbers."""
    energy = np.abs(np.fft.rfft(np.asarray(u, float), axis=-1)) ** 2
    cut = 2 * energy.shape[-1] // 3
    return (energy[..., cut:].sum(-1) / np.maximum(energy.sum(-1), 1e-300)).max(axis=-1)


def wavenumbers(n: int, device=None) -> torch.Tensor:
    return torch.fft.rfftfreq(n, d=1.0 / n, device=device)


def burgers_step(u_hat: torch.Tensor, dt: float, nu: float, k: torch.Tensor, dealias: torch.Tensor, n: int):
    """One integrating-factor RK4 step in Fourier space (``u_hat``: (batch, n//2 + 1))."""
    half = torch.exp(-nu * k**2 * dt / 2)
    full = half * half

    def nonlinear(v_hat):  # -(u^2 / 2)_x, dealiased
        u = torch.fft.irfft(v_hat * dealias, n=n)
        return -0.5j * k * torch.fft.rfft(u * u)

    a = nonlinear(u_hat)
    b = nonlinear(half * (u_hat + dt / 2 * a))
    c = nonlinear(half * u_hat + dt / 2 * b)
    d = nonlinear(full * u_hat + dt * half * c)
    return full * u_hat + dt / 6 * (full * a + 2 * half * (b + c) + d)


def solve_burgers(u0: torch.Tensor, nu: float, dt: float, steps: int, save_every: int = 1) -> torch.Tensor:
    """Integrate from ``u0`` (batch, n); returns snapshots (batch, steps // save_every + 1, n)."""
    n = u0.shape[-1]
    k = wavenumbers(n, u0.device).to(u0.dtype)
    dealias = (k <= n / 3).to(u0.dtype)  # 2/3 rule
    u_hat = torch.fft.rfft(u0)
    bound = 10 * float(u0.abs().max()) + 1.0  # the maximum principle: |u| never grows
    out = [u0]
    for step in range(1, steps + 1):
        u_hat = burgers_step(u_hat, dt, nu, k, dealias, n)
        if step % save_every == 0:
            u = torch.fft.irfft(u_hat, n=n)
            bad = ~torch.isfinite(u).all(dim=-1) | (u.abs().amax(dim=-1) > bound)
            if bad.any():
                raise BlowUpError(f"trajectory {int(bad.nonzero()[0])} blew up at step {step} (dt={dt}, nu={nu}): "
                                  "reduce dt or raise the resolution")
            out.append(u)
    return torch.stack(out, dim=1)


def cole_hopf(x: torch.Tensor, t: float, nu: float, modes) -> torch.Tensor:
    """Exact periodic solution u = -2 nu phi_x / phi with phi = c0 + sum_k c_k e^{-nu k^2 t} cos(k x + s_k)
    (``modes``: list of (k, c_k, s_k); ``c0`` must exceed ``sum |c_k|`` so ``phi > 0``)."""
    c0 = 1.0 + sum(abs(c) for _, c, _ in modes)
    phi = torch.full_like(x, c0)
    phi_x = torch.zeros_like(x)
    for k, c, s in modes:
        decay = c * math.exp(-nu * k * k * t)
        phi = phi + decay * torch.cos(k * x + s)
        phi_x = phi_x - decay * k * torch.sin(k * x + s)
    return -2 * nu * phi_x / phi


# ------------------------------------------------------------------------- levels and samples
@dataclass(frozen=True)
class BurgersLevel:
    name: str
    viscosity: float
    resolution: int  # default grid points on [0, 2 pi); --resolution overrides
    modes: int  # initial condition: random Fourier modes 1..modes, spectrum ~ 1/k
    amplitude: float  # max |u0| (the maximum principle keeps |u| below it)
    t_end: float
    interval: float
    cfl: float
    description: str

    def problems(self):
        checks = [(self.viscosity > 0, "viscosity must be > 0"), (self.resolution >= 8, "resolution must be >= 8"),
                  (self.modes >= 1, "modes must be >= 1"), (self.amplitude > 0, "amplitude must be > 0"),
                  (self.interval > 0 and self.t_end >= self.interval, "need 0 < interval <= t_end"),
                  (0 < self.cfl <= 1, "cfl must be in (0, 1]")]
        return [message for ok, message in checks if not ok]


LEVELS = {  # shocks form at t ~ 1 / max|u0'|; their width ~ nu / |jump| must stay resolved
    "easy": BurgersLevel("easy", 0.1, 256, 4, 1.0, 2.0, 0.02, 0.4, "nu = 0.1: smooth fronts, 256 points"),
    "medium": BurgersLevel("medium", 0.01, 1024, 6, 1.0, 2.0, 0.02, 0.4, "nu = 0.01: steep fronts, 1024 points"),
    "hard": BurgersLevel("hard", 0.002, 4096, 8, 1.0, 2.0, 0.02, 0.4, "nu = 0.002: thin shocks, 4096 points"),
}


def initial_condition(n: int, modes: int, amplitude: float, seed: int) -> torch.Tensor:
    """Random smooth periodic u0 (float64): modes 1..``modes`` with N(0, 1/k) amplitudes and random
    phases, scaled to ``max |u0|`` = ``amplitude``."""
    g = torch.Generator().manual_seed(int(seed))
    x = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    coeff = torch.randn(modes, generator=g, dtype=torch.float64) / torch.arange(1, modes + 1, dtype=torch.float64)
    phase = torch.rand(modes, generator=g, dtype=torch.float64) * 2 * math.pi
    u = sum(coeff[k] * torch.cos((k + 1) * x + phase[k]) for k in range(modes))
    return amplitude * u / u.abs().max()


def burgers_samples(level: BurgersLevel, resolution: int, seeds, names, *, device=None) -> list[dict]:
    """One batch of trajectories; the step ``cfl h / amplitude`` is the same for all."""
    import time

    start = time.perf_counter()
    u0 = torch.stack([initial_condition(resolution, level.modes, level.amplitude, s) for s in seeds]).to(device)
    h = 2 * math.pi / resolution
    every = max(1, math.ceil(level.interval / (level.cfl * h / level.amplitude) - 1e-9))
    dt = level.interval / every
    count = int(round(level.t_end / level.interval))
    try:
        u = solve_burgers(u0, level.viscosity, dt, count * every, save_every=every)
    except BlowUpError as err:
        raise BlowUpError(f"{err} (samples {list(names)})") from None
    wall = (time.perf_counter() - start) / len(seeds)
    t = np.arange(count + 1) * level.interval
    u = u.cpu().numpy().astype(np.float32)
    tail = spectral_tail(u)
    return [{"u": u[i], "t": t, "viscosity": level.viscosity, "steps": count * every, "solver_dt": dt,
             "wall_seconds": wall, "spectral_tail": float(tail[i]),
             "under_resolved": bool(tail[i] > SPECTRAL_TAIL_LIMIT)} for i in range(len(seeds))]
