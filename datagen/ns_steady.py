"""The channel's implicit steady mode: pseudo-time steps far beyond the advective CFL limit.

Marching to a steady state with the explicit advection of :meth:`ChannelFlow.step` takes the
flow's whole physical transient at CFL-limited steps (2D-1 at 40 cells per diameter: ~7,300 steps).
Here each step is backward Euler in pseudo-time with the advection linearised about the current
state (Picard), ``(d/dt - A(u^n, .) - nu L) u* = u^n / dt - G p^n``, a non-symmetric system solved
matrix-free with pdekit's BiCGStab (Jacobi-preconditioned; the diagonal read off with five probes),
followed by the same pressure projection as the march, in its rotational incremental form
(``p += q - nu div u*``, Timmermans et al. 1996: with the plain increment a large step would leave
the pressure's short waves converging at ``nu k^2 dt / (1 + nu k^2 dt)`` per step, near 1).

Every extra term vanishes at a steady state (``u* = u^n``, ``q = 0``, ``div u* = 0``), and the
outlet keeps the march's convective balance (taken implicitly, so it is stable at any step): the
fixed point is the march's steady state, the one the ``steady_tol`` stop of :func:`simulate`
finds, only reached in far fewer steps.  The partly open cut-cell faces whose node is inside an
obstacle carry ``-dt G p`` in the march; here they carry it with the march's step ``march_dt``, so
that the two modes share their steady state exactly.
"""
from __future__ import annotations

import torch

from datagen.burgers import BlowUpError
from pdekit.krylov import bicgstab

PSEUDO_STEP = 20  # the pseudo-time step in march steps (2D-1: fastest of 10, 20, 30, 40 at 20 cells/D)
MOMENTUM_TOL = 1e-2  # the momentum solves' relative residual: inexact Picard steps cost 4x less, same fixed point


def transport(flow, advecting, u, v):
    """``A(advecting, (u, v)) + nu L (u, v)`` on every face: the steady momentum equations' advection
    and diffusion, with ``(u, v)`` taken as :meth:`ChannelFlow.fluid_velocities`."""
    fu, fv = flow.fluid_velocities(u, v)
    padded = flow._padded(fu, fv)
    hu, hv = flow.advection(advecting, (fu, fv), padded)
    lap_u, lap_v = flow.laplacians(fu, fv, padded)
    return hu + flow.nu * lap_u, hv + flow.nu * lap_v


def stacked(flow, ru, rv) -> torch.Tensor:
    """``(ru, rv)`` on the free faces as one vector (the Krylov solvers' layout)."""
    return torch.cat([(ru * flow.u_free).reshape(-1), (rv * flow.v_free).reshape(-1)])


def momentum_operator(flow, dt: float, advecting):
    """``d -> d / dt - A(advecting, d) - nu L d`` on the free faces, (u, v) stacked in one vector
    (batched), for pdekit's Krylov solvers."""
    n_u = flow.u.numel()

    def apply(x):
        out = []
        for flat in x:
            du = flat[:n_u].view_as(flow.u) * flow.u_free
            dv = flat[n_u:].view_as(flow.v) * flow.v_free
            tu, tv = transport(flow, advecting, du, dv)
            out.append(stacked(flow, du / dt - tu, dv / dt - tv))
        return torch.stack(out)

    return apply


def pseudo_step(flow, dt: float, march_dt: float, tol: float = MOMENTUM_TOL) -> int:
    """One implicit pseudo-time step of ``flow`` (see the module docstring); returns the BiCGStab
    iterations it took.  ``march_dt``: the step of the explicit-advection march (its partly open
    cut-cell faces); ``tol``: the momentum solve's relative residual."""
    factor = flow.inflow_factor(flow.time + dt)
    u_old, v_old = flow.u, flow.v
    gu, gv = flow._gradient(flow.p)
    # boundary values at the new step: the inflow, and the outlet's convective balance, implicit in
    # the outlet (stable at any dt) with the march's old-pressure-gradient term
    c = dt * flow.u_mean * abs(factor) / flow.h
    u = u_old * flow.u_keep
    u[0] = flow.inflow * factor
    if flow.outflow == "convective":  # (do-nothing: the outlet faces are free, solved with the rest)
        outlet = (u_old[-1] + c * u_old[-2] - dt * gu[-1]) / (1.0 + c)
        u[-1] = torch.where(flow.fluid[-1] > 0, outlet, 0.0)
    v = v_old * flow.v_free
    inside = (~flow.u_free) & flow.u_corrected  # cut cells' partly open faces (node inside): as the march
    inside[-1] = False
    u = torch.where(inside, -march_dt * gu, u)
    v = torch.where((~flow.v_free) & flow.v_corrected, -march_dt * gv, v)
    # the residual of backward Euler at these values, then the linearised correction
    advecting = flow.fluid_velocities(u_old, v_old)
    tu, tv = transport(flow, advecting, u, v)
    rhs = -stacked(flow, (u - u_old) / dt + gu - tu, (v - v_old) / dt + gv - tv)
    operator = momentum_operator(flow, dt, advecting)
    diagonal = flow._viscous_diagonal(operator)  # any 5-point operator's diagonal, from five probes
    result = bicgstab(operator, rhs[None], lambda r: r / diagonal, tol=tol, maxiter=2000)
    if not bool(result.converged):
        raise BlowUpError(f"implicit steady step: the momentum solve did not converge ({result.status[0]})")
    n_u = flow.u.numel()
    flow.u = u + result.x[0, :n_u].view_as(u) * flow.u_free
    flow.v = v + result.x[0, n_u:].view_as(v) * flow.v_free
    rotational = flow.nu * flow.divergence()
    flow.project(dt, incremental=True)
    flow.p = flow.p - rotational
    flow.previous_rhs = None  # a march continued from here restarts Adams–Bashforth
    flow._record_momentum(dt)
    flow.time += dt
    flow.steps += 1
    return int(result.iterations)


def steady_residual(flow, scale: torch.Tensor | None = None) -> tuple[float, float]:
    """Max and RMS of ``|A(u, u) + nu L u - G p| / scale`` over the free faces: the residual of the steady
    momentum equations (the velocity is divergence-free after every projection), in the units of
    the march's stop, ``max |du/dt|``.  ``scale`` (stacked u, v faces; default 1): the march's
    Crank–Nicolson diagonal ``1 + dt nu / 2 (-L)_ii``, which is what the march's change per step
    divides the residual by at a node next to a cut-cell wall (whose wall term ``(1/theta - 1)/h^2``
    is stiff): with it the two stops measure the same thing."""
    tu, tv = transport(flow, flow.fluid_velocities(flow.u, flow.v), flow.u, flow.v)
    gu, gv = flow._gradient(flow.p)
    residual = stacked(flow, tu - gu, tv - gv)
    if scale is not None:
        residual = residual / scale
    free = torch.cat([flow.u_free.reshape(-1), flow.v_free.reshape(-1)])
    return float(residual.abs().max()), float(residual.norm() / free.sum().sqrt())


class ImplicitSteady:
    """The implicit steady mode as a stepper for :func:`~datagen.ns_channel_run.simulate`: each call
    takes one :func:`pseudo_step` and mixes the result with the last ``memory`` ones by Anderson
    acceleration (Walker & Ni 2011): the pseudo-time steps converge linearly, slowly once the
    pressure-velocity coupling is all that is left (an Uzawa-like rate ``1 - beta^2``), and the
    mixing turns that tail into a few dozen steps.  The mixture is an affine combination of
    projected states, so it stays divergence-free with the same inflow.  ``residual``: the
    steady residual (:func:`steady_residual`) after the last call."""

    def __init__(self, flow, march_dt: float, memory: int = 8, tol: float = MOMENTUM_TOL):
        self.flow, self.march_dt, self.memory, self.tol = flow, march_dt, memory, tol
        self.states: list[torch.Tensor] = []  # x_k
        self.images: list[torch.Tensor] = []  # G(x_k)
        self.residual = float("inf")
        self.momentum_iterations = 0
        self.scale = flow._viscous_diagonal(flow._viscous_operator(0.5 * march_dt * flow.nu))

    def _state(self) -> torch.Tensor:
        f = self.flow
        return torch.cat([f.u.reshape(-1), f.v.reshape(-1), f.p.reshape(-1)])

    def _set(self, x: torch.Tensor) -> None:
        f = self.flow
        n_u, n_v = f.u.numel(), f.v.numel()
        f.u = x[:n_u].view_as(f.u).clone()
        f.v = x[n_u:n_u + n_v].view_as(f.v).clone()
        f.p = x[n_u + n_v:].view_as(f.p).clone()

    def __call__(self, dt: float) -> None:
        x = self._state()
        self.momentum_iterations += pseudo_step(self.flow, dt, self.march_dt, self.tol)
        g = self._state()
        self.states, self.images = (self.states + [x])[-(self.memory + 1):], (self.images + [g])[-(self.memory + 1):]
        if len(self.states) > 1:
            residuals = torch.stack([gi - xi for xi, gi in zip(self.states, self.images)], 1)  # f_k columns
            d_f = residuals[:, 1:] - residuals[:, :-1]
            d_g = torch.stack(self.images, 1)
            d_g = d_g[:, 1:] - d_g[:, :-1]
            gamma = torch.linalg.lstsq(d_f, residuals[:, -1:]).solution
            mixed = g - (d_g @ gamma)[:, 0]
            if bool(torch.isfinite(mixed).all()):
                self._set(mixed)
        self.residual, self.rms = steady_residual(self.flow, self.scale)


def solve_steady(flow, march_dt: float, steady_tol: float, *, max_steps: int = 2000, progress=None) -> dict:
    """Pseudo-time steps (:class:`ImplicitSteady`, step ``PSEUDO_STEP x march_dt``) until the RMS of
    the steady residual (per node divided by the march's Crank–Nicolson diagonal) is below
    ``steady_tol x U_max``: ``converged``.  The RMS, not the maximum: the maximum sits at a few stiff
    nodes next to cut-cell walls, which these steps settle slowly while the forces no longer change
    (2D-1 at 40 cells per diameter: the drag to 6 digits).  Otherwise, after ``max_steps``, the
    caller's march finishes with its own stop.  The flow's time is left where it was (a steady
    state with a constant inflow does not depend on it).  Returns the pseudo steps, their momentum
    iterations, seconds, the final residuals and ``converged``."""
    import time

    if not getattr(flow.waveform, "constant", False):
        raise ValueError("steady_scheme: implicit needs a constant inflow (a waveform changes the steady state)")
    start, time0, steps0 = time.perf_counter(), flow.time, flow.steps
    stepper = ImplicitSteady(flow, march_dt)
    steps, converged = 0, False
    while steps < max_steps and not converged:
        stepper(PSEUDO_STEP * march_dt)
        steps += 1
        if progress is not None:
            progress(steps, stepper.rms / flow.u_max)
        if not stepper.rms < float("inf"):
            raise BlowUpError("implicit steady mode: the residual is not finite")
        converged = stepper.rms < steady_tol * flow.u_max
    flow.time, flow.steps = time0, steps0
    flow.momentum_history = []  # the control volumes' d/dt starts afresh (0 at a steady state)
    return {"pseudo_steps": steps, "pseudo_dt": PSEUDO_STEP * march_dt, "pseudo_momentum_iterations": stepper.momentum_iterations,
            "pseudo_seconds": time.perf_counter() - start, "pseudo_residual": stepper.residual / flow.u_max,
            "pseudo_rms": stepper.rms / flow.u_max, "pseudo_converged": converged}
