"""1-D viscous Burgers u_t + u u_x = nu u_xx on the periodic interval [0, 2 pi): pseudo-spectral
in space (2/3 dealiasing), integrating-factor RK4 in time (the viscous term is integrated
exactly, so stiffness does not limit the step; the nonlinear term is 4th order).  Batched over
trajectories in torch, CPU or CUDA.  Work toward the Navier–Stokes/Burgers issue.
"""
from __future__ import annotations

import math

import torch


class BlowUpError(RuntimeError):
    """A trajectory produced NaN/Inf or grew without bound."""


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
    (``modes``: list of (k, c_k, s_k); c0 must exceed sum |c_k| so phi > 0)."""
    c0 = 1.0 + sum(abs(c) for _, c, _ in modes)
    phi = torch.full_like(x, c0)
    phi_x = torch.zeros_like(x)
    for k, c, s in modes:
        decay = c * math.exp(-nu * k * k * t)
        phi = phi + decay * torch.cos(k * x + s)
        phi_x = phi_x - decay * k * torch.sin(k * x + s)
    return -2 * nu * phi_x / phi
