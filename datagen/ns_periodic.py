"""2-D incompressible Navier–Stokes in vorticity form on the periodic unit square, batched in torch.

    w_t + u . grad w = nu lap w - mu w + f,     u = (psi_y, -psi_x),  -lap psi = w

Pseudo-spectral in space with the 2/3 rule on the nonlinear term; in time Crank–Nicolson for the
viscous (and drag) term and Heun's method (2nd order) for advection and forcing — the scheme of
the FNO benchmark data (Li et al. 2021), whose generator used one explicit Euler stage instead of
Heun.  The step is CFL-limited per trajectory and per snapshot interval: each trajectory takes
``ceil(interval / dt_cfl)`` equal steps to reach the next snapshot, so every trajectory's data is
independent of which others share its batch (torch's batched FFTs act slice by slice, bit for
bit) and all trajectories share the snapshot times.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from datagen.burgers import BlowUpError


@dataclass(frozen=True)
class Forcing:
    """``kind``: ``"fno"`` = amplitude (sin 2 pi (x + y) + cos 2 pi (x + y)) (the FNO benchmark's, with
    amplitude 0.1); ``"kolmogorov"`` = the curl of the body force (amplitude sin(k y), 0), i.e.
    ``-amplitude k cos(k y)`` with ``k = 2 pi wavenumber``; ``"none"``."""

    kind: str = "fno"
    amplitude: float = 0.1
    wavenumber: int = 4

    def field(self, n: int, dtype, device) -> torch.Tensor:
        x = torch.arange(n, dtype=dtype, device=device) / n
        X, Y = torch.meshgrid(x, x, indexing="ij")
        if self.kind == "fno":
            return self.amplitude * (torch.sin(2 * math.pi * (X + Y)) + torch.cos(2 * math.pi * (X + Y)))
        if self.kind == "kolmogorov":
            k = 2 * math.pi * self.wavenumber
            return -self.amplitude * k * torch.cos(k * Y)
        if self.kind == "none":
            return torch.zeros_like(X)
        raise ValueError(f"forcing must be 'fno', 'kolmogorov' or 'none', got {self.kind!r}")


def _forcing_field(forcing, batch: int, n: int, dtype, device) -> torch.Tensor:
    if isinstance(forcing, Forcing):
        return forcing.field(n, dtype, device)
    field = torch.as_tensor(forcing, dtype=dtype, device=device)
    if tuple(field.shape) not in ((n, n), (batch, n, n)):
        raise ValueError(f"a forcing array must have shape ({n}, {n}) or ({batch}, {n}, {n}), got {tuple(field.shape)}")
    if not torch.isfinite(field).all():
        raise ValueError("the forcing array has non-finite values")
    return field


class SpectralGrid:
    """Wavenumbers of an ``n x n`` periodic unit square (rfft layout: last axis halved)."""

    def __init__(self, n: int, dtype=torch.float64, device=None):
        self.n = n
        kx = 2 * math.pi * torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype, device=device)
        ky = 2 * math.pi * torch.fft.rfftfreq(n, d=1.0 / n, dtype=dtype, device=device)
        self.kx, self.ky = torch.meshgrid(kx, ky, indexing="ij")
        self.k2 = self.kx**2 + self.ky**2
        self.inv_k2 = torch.where(self.k2 > 0, 1.0 / torch.where(self.k2 > 0, self.k2, 1.0), 0.0)
        cutoff = 2.0 / 3.0 * math.pi * n  # 2/3 of the largest wavenumber pi n
        self.dealias = ((self.kx.abs() <= cutoff) & (self.ky.abs() <= cutoff)).to(dtype)
        # complex multipliers precomputed: each spectral derivative is one elementwise product
        self.d_dx, self.d_dy = 1j * self.kx, 1j * self.ky
        self.to_u, self.to_v = 1j * self.ky * self.inv_k2, -1j * self.kx * self.inv_k2

    def velocity(self, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n
        return torch.fft.irfft2(self.to_u * w_hat, s=(n, n)), torch.fft.irfft2(self.to_v * w_hat, s=(n, n))

    def advection(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Fourier transform of ``u . grad w``, dealiased (2/3 rule)."""
        n = self.n
        u, v = self.velocity(w_hat)
        wx = torch.fft.irfft2(self.d_dx * w_hat, s=(n, n))
        wy = torch.fft.irfft2(self.d_dy * w_hat, s=(n, n))
        return torch.fft.rfft2(torch.addcmul(u * wx, v, wy)) * self.dealias


def gaussian_random_field(n: int, generator: torch.Generator, alpha: float = 2.5, tau: float = 7.0,
                          dtype=torch.float64, device=None) -> torch.Tensor:
    """A sample of the FNO benchmark's initial vorticity: mean zero, covariance
    ``(-lap + tau^2)^(-alpha)`` scaled by ``tau^(2 alpha - 2)`` (amplitude independent of ``n``)."""
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
    KX, KY = torch.meshgrid(k, k, indexing="ij")
    sigma = tau ** (0.5 * (2 * alpha - 2))
    sqrt_eig = n * n * math.sqrt(2.0) * sigma * (4 * math.pi**2 * (KX**2 + KY**2) + tau**2) ** (-alpha / 2)
    sqrt_eig[0, 0] = 0.0
    xi = torch.randn(n, n, 2, generator=generator, dtype=torch.float64)
    coefficients = sqrt_eig * torch.complex(xi[..., 0], xi[..., 1])
    return torch.fft.ifft2(coefficients).real.to(dtype=dtype, device=device)


def taylor_green(n: int, t: float, nu: float, wavenumber: int = 1, dtype=torch.float64) -> torch.Tensor:
    """Exact Taylor–Green vorticity ``2 k sin(k x) sin(k y) exp(-2 nu k^2 t)`` with ``k = 2 pi m``
    (a steady solution of the Euler equations that decays at the viscous rate)."""
    k = 2 * math.pi * wavenumber
    x = torch.arange(n, dtype=dtype) / n
    X, Y = torch.meshgrid(x, x, indexing="ij")
    return 2 * k * torch.sin(k * X) * torch.sin(k * Y) * math.exp(-2 * nu * k * k * t)


def is_whole_multiple(span: float, unit: float) -> bool:
    return abs(round(span / unit) * unit - span) <= 1e-9 * max(abs(span), unit)


def whole_multiple(span: float, unit: float, what: str) -> int:
    """``span / unit`` when it is a whole number (to 1e-9 relative), else a ValueError naming ``what``:
    times are never rounded silently."""
    if not is_whole_multiple(span, unit):
        raise ValueError(f"{what} must be a whole multiple of {unit:g}, got {span:g} ({span / unit:.6g} of them)")
    return int(round(span / unit))


def simulate(w0: torch.Tensor, *, nu: float, t_end: float, interval: float, forcing=Forcing(),
             drag: float = 0.0, warmup: float = 0.0, cfl: float = 0.5, max_dt: float = 1e-2,
             dt: float | None = None, names=None) -> dict:
    """Integrate a batch of initial vorticities ``w0`` (batch, n, n) to ``warmup + t_end``.

    ``forcing``: a :class:`Forcing`, or an array of the forcing's curl on the grid, (n, n) for all or
    (batch, n, n) one per sample.  ``dt``: a fixed step (``interval`` and ``warmup`` must be whole
    multiples of it); by default each trajectory takes CFL-limited equal steps per interval.
    ``t_end`` must be a whole number of ``interval``.

    Returns ``vorticity`` (batch, T, n, n) at ``t = 0, interval, ..., t_end`` after the warm-up,
    ``t`` (T,), ``steps`` (batch,) time steps taken per trajectory and ``max_cfl`` (batch,).
    ``names`` labels the trajectories in a :class:`BlowUpError` (default: batch positions).
    """
    if w0.ndim != 3 or w0.shape[1] != w0.shape[2]:
        raise ValueError(f"w0 must have shape (batch, n, n), got {tuple(w0.shape)}")
    if interval <= 0 or t_end < 0 or warmup < 0 or not 0 < cfl <= 1.5:
        raise ValueError("need interval > 0, t_end >= 0, warmup >= 0 and 0 < cfl <= 1.5")
    if dt is not None and not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a positive number, got {dt}")
    count = whole_multiple(t_end, interval, "t_end")
    if dt is not None:
        whole_multiple(interval, dt, "interval")
        whole_multiple(warmup, dt, "warmup")
    batch, n, _ = w0.shape
    names = list(names) if names is not None else list(range(batch))
    spec = SpectralGrid(n, w0.dtype, w0.device)
    f_hat = torch.fft.rfft2(_forcing_field(forcing, batch, n, w0.dtype, w0.device))
    damping = nu * spec.k2 + drag  # implicit (Crank–Nicolson) part
    w_hat = torch.fft.rfft2(w0)
    h, fixed_dt = 1.0 / n, dt
    bound = 100.0 * (float(w0.abs().max()) + 1.0) + 100.0 * float(f_hat.abs().max()) / n**2
    steps = torch.zeros(batch, dtype=torch.long)
    max_cfl = torch.zeros(batch, dtype=w0.dtype)

    def check(w_hat, done_steps, t):
        w = torch.fft.irfft2(w_hat, s=(n, n))
        bad = ~torch.isfinite(w).all(dim=(1, 2)) | (w.abs().amax(dim=(1, 2)) > bound)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise BlowUpError(f"sample {names[i]} blew up by step {int(done_steps[i])} (t <= {t:.4g}, nu={nu}, "
                              f"max |w| = {float(w[i].abs().max()):.3g}): reduce --cfl or raise the resolution")
        return w

    def advance(w_hat, t0: float, span: float):
        """Advance every trajectory by ``span`` with its own CFL-limited number of equal steps."""
        if span <= 0:
            return w_hat
        u, v = spec.velocity(w_hat)
        speed = (u.abs() + v.abs()).amax(dim=(1, 2)).cpu()
        if fixed_dt is None:
            dt_cfl = torch.clamp(cfl * h / torch.clamp(speed, min=1e-12), max=max_dt)
            count = torch.ceil(span / dt_cfl - 1e-9).long().clamp(min=1)
        else:
            count = torch.full((batch,), whole_multiple(span, fixed_dt, "interval"), dtype=torch.long)
        dt = (span / count.to(w0.dtype)).to(w0.device).view(batch, 1, 1)
        explicit = 1.0 - 0.5 * dt * damping
        implicit = 1.0 / (1.0 + 0.5 * dt * damping)
        for s in range(int(count.max())):
            rhs1 = f_hat - spec.advection(w_hat)
            predictor = (explicit * w_hat + dt * rhs1) * implicit
            rhs2 = f_hat - spec.advection(predictor)
            stepped = (explicit * w_hat + 0.5 * dt * (rhs1 + rhs2)) * implicit
            moving = (count > s).to(w0.device).view(batch, 1, 1)  # trajectories with steps left
            w_hat = torch.where(moving, stepped, w_hat)
            if (s + 1) % 25 == 0:  # a blow-up is named within 25 steps (a check costs a sync on GPU)
                check(w_hat, steps + torch.clamp(count, max=s + 1), t0 + span)
        steps.add_(count)
        max_cfl.copy_(torch.maximum(max_cfl, speed * dt.view(-1).cpu() / h))
        return w_hat

    w_hat = advance(w_hat, 0.0, warmup)
    snapshots = [check(w_hat, steps, warmup)]
    for i in range(count):
        w_hat = advance(w_hat, warmup + i * interval, interval)
        snapshots.append(check(w_hat, steps, warmup + (i + 1) * interval))
    return {"vorticity": torch.stack(snapshots, dim=1), "t": torch.arange(count + 1, dtype=torch.float64) * interval,
            "steps": steps, "max_cfl": max_cfl}
