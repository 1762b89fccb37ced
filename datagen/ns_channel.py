"""2-D incompressible channel flow past obstacles: fractional-step projection on a staggered grid.

Grid (marker-and-cell): pressure at the centres of ``nx x ny`` square cells of side ``h``; ``u`` on
the ``nx + 1`` vertical faces of each row, ``v`` on the ``ny + 1`` horizontal faces of each
column.  Obstacles, ``walls="staircase"`` (default): solid cells; a face touching a solid cell
carries zero normal velocity, and no-slip on the tangential velocity uses a mirrored ghost value
(wall half a cell away), as do the channel walls.  ``walls="cut-cell"``: the obstacles' true
boundaries, second order (:mod:`datagen.cut_cells`: face fractions in the divergence and the
pressure operator, a ghost-fluid wall term in the viscous Laplacian; implicit viscosity only).

Boundaries: inflow (x = 0) a parabolic profile with the parabola's exact flux, scaled by a
waveform ``f(t)`` (:mod:`datagen.inflow`; constant 1 by default, re-applied every step); no-slip
walls (y = 0, H); outflow (x = L) convective, ``du/dt + |f(t)| U_mean du/dx = 0``, with ``p = 0``
half a cell beyond it.

One step (time step ``dt`` fixed per trajectory, CFL-limited; a hard check stops at CFL > 1):

1. ``u* = u + dt (3/2 H(u^n) - 1/2 H(u^(n-1)))``: Adams–Bashforth 2 for advection (central,
   conservative) and, with ``viscosity="explicit"``, diffusion (step limited by ``h^2 / nu``); with
   ``viscosity="implicit"`` diffusion is Crank–Nicolson, ``(I - dt nu/2 L) u* = ... + dt nu/2 L u^n``,
   a matrix-free solve with pdekit's CG (the step is then limited by advection only) and the
   pressure solved as an increment over the previous one (so steady states are those of the
   explicit scheme exactly);
2. ``A p = -div(u*) / dt`` with ``A = -div grad`` the pdekit :class:`DiffusionOperator` on the
   fluid cells (Neumann at the inlet, walls and obstacles, Dirichlet at the outlet), solved with
   pdekit's Krylov solvers (AMG-PCG by default; any pdekit preconditioner, including a trained
   network through FCG);
3. ``u = u* - dt grad p``, so ``div u = dt (A p - b)``: the divergence after each step equals the
   pressure solve's residual (``||div u|| <= tol ||div u*||``).

Forces on each obstacle (:mod:`datagen.ns_forces`): the momentum balance of a control volume
around it (second order), with the pressure and viscous parts from the wall stresses; drag and
lift coefficients ``2 F / (U_mean^2 D)`` with ``D`` the obstacle's frontal height (rho = 1).
"""
from __future__ import annotations

import json
import math
import time

import numpy as np
import torch

from datagen.burgers import BlowUpError
from datagen.cut_cells import CutCellGeometry
from datagen.inflow import Waveform, describe
from datagen.inflow import peak as inflow_peak
from datagen.ns_forces import ForceEvaluator
from datagen.obstacles import frontal_height, rasterize
from pdekit import BoundaryConditions, DiffusionOperator, Grid
from pdekit.boundary import Dirichlet, Neumann
from pdekit.errors import SingularOperatorError
from pdekit.krylov import fcg, pcg

PRECONDITIONERS = ("amg", "jacobi", "ilu", "ssor", "none")
FORCE_KEYS = ("drag", "lift", "drag_pressure", "drag_viscous", "lift_pressure", "lift_viscous")
VISCOSITY = ("explicit", "implicit")  # Adams–Bashforth 2 (step limited by h^2 / nu) | Crank–Nicolson
WALLS = ("staircase", "cut-cell")  # obstacles as solid cells | their true boundaries (datagen.cut_cells)
OUTFLOWS = ("convective", "do-nothing")  # du/dt + U du/dx = 0 | -p n + nu du/dn = 0 (the DFG benchmarks')


def inflow_profile(ny: int, height: float, u_max: float) -> np.ndarray:
    """The inflow face velocities: the exact discrete Poiseuille profile (a steady state of the
    scheme with the mirrored wall ghosts), ``y (H - y) + h^2 / 4`` at the cell centres, scaled so that
    the faces carry exactly the parabola ``4 U y (H - y) / H^2``'s flux ``2 U H / 3`` (the raised
    profile alone carries ``1 + 2 h^2 / H^2`` times it).  It differs from the parabola by O(h^2)."""
    h = height / ny
    y = (np.arange(ny) + 0.5) * h
    return 4.0 * u_max * (y * (height - y) + h * h / 4.0) / height**2 / (1.0 + 2.0 * h * h / height**2)


def make_preconditioner(spec, op: DiffusionOperator, device=None):
    """``spec``: ``"amg"``, ``"jacobi"``, ``"ilu"``, ``"none"``, a path to a trained pdekit
    checkpoint (loaded with :func:`pdekit.learning.solvers.load`), or any object with ``__call__`` (a
    pdekit Preconditioner).  Returns ``(M, flexible)``: a network needs flexible CG (a neural
    multigrid checkpoint does not: it is linear and SPD, so plain PCG runs with it)."""
    from pdekit import precond

    if spec is None or spec == "none":
        return None, False
    if not isinstance(spec, str):
        return spec, getattr(spec, "linear", True) is False
    if spec == "amg":
        return precond.AMG(op), False
    if spec == "jacobi":
        return precond.Jacobi(op), False
    if spec == "ilu":
        return precond.ILU(op), False
    if spec == "ssor":  # the relaxation is chosen per solve (ChannelFlow.omega)
        return None, False
    from pdekit.learning.solvers import load

    M = load(spec, op, device=device)  # the network runs where the flow does
    return M, not M.linear  # a network needs flexible CG; the neural multigrid is a fixed SPD map


class ChannelFlow:
    """State and operators of one channel-flow trajectory (see the module docstring)."""

    def __init__(self, shapes, *, nx: int, ny: int, height: float, nu: float, u_max: float,
                 pressure_precond="amg", tol: float = 1e-8, dtype=torch.float64, device=None,
                 omega="auto", seed: int = 0, viscosity: str = "explicit", viscous_tol: float = 1e-10,
                 walls: str = "staircase", inflow=None, outflow: str = "convective"):
        self.nx, self.ny, self.h = nx, ny, height / ny
        # the inflow profile's factor f(t) (datagen.inflow): a Waveform, a spec value naming one, or
        # any function of t; None: constant 1
        self.waveform = Waveform.parse(inflow or "constant") if not callable(inflow) else inflow
        self.length, self.height = nx * self.h, height
        self.nu, self.u_max, self.u_mean = nu, u_max, 2.0 * u_max / 3.0
        if viscosity not in VISCOSITY:
            raise ValueError(f"viscosity must be one of {VISCOSITY}, got {viscosity!r}")
        self.viscosity, self.viscous_tol, self.viscous_iterations = viscosity, viscous_tol, 0
        self._viscous_jacobi = None  # (dt nu / 2, the viscous operator's diagonal)
        if walls not in WALLS:
            raise ValueError(f"walls must be one of {WALLS}, got {walls!r}")
        if walls == "cut-cell" and viscosity != "implicit":
            # the wall term (1/theta - 1)/h^2 would limit an explicit step by the smallest wall distance
            raise ValueError("cut-cell walls need viscosity='implicit' (viscous_scheme: implicit)")
        self.walls = walls
        if outflow not in OUTFLOWS:
            raise ValueError(f"outflow must be one of {', '.join(OUTFLOWS)}, got {outflow!r}")
        self.outflow = outflow
        self.tol, self.dtype, self.device = tol, dtype, torch.device(device or "cpu")
        self.shapes = list(shapes)
        labels = rasterize(self.shapes, nx, ny, self.h)
        for k, shape in enumerate(self.shapes):
            if not (labels == k + 1).any():
                raise ValueError(f"obstacle {k + 1} ({shape['shape']}) covers no cell centre at h = {self.h:.4g}: "
                                 "raise the resolution or enlarge it")
        solid = labels > 0
        if solid[0].any() or solid[-1].any() or solid[:, 0].any() or solid[:, -1].any():
            raise ValueError("obstacles must not touch the inlet, outlet or walls")
        self.labels, self.solid = labels, solid
        geometry = CutCellGeometry(self.shapes, nx, ny, self.h) if walls == "cut-cell" else None
        fluid = ~solid if geometry is None else geometry.active  # the pressure unknowns
        grid = Grid((nx, ny), spacing=self.h, origin=self.h / 2)
        bc = BoundaryConditions(default=Neumann(0.0), faces={"x+": Dirichlet(0.0)}, obstacle=Neumann(0.0))
        fractions = None if geometry is None else (geometry.u_open, geometry.v_open)
        try:
            self.op = DiffusionOperator(grid, mask=fluid, bc=bc, face_fractions=fractions)
        except SingularOperatorError:
            raise ValueError("the obstacles enclose fluid cut off from the outlet") from None
        self.M, self.flexible = make_preconditioner(pressure_precond, self.op, self.device)
        # SSOR: a fixed omega, or one an online bandit learns from solve to solve (pdekit.relaxation)
        self.omega = omega if pressure_precond == "ssor" else None
        self.omega_chooser = None
        if self.omega == "auto":
            from pdekit.relaxation import TsallisINF

            self.omega_chooser = TsallisINF(seed=seed)
        self._ssor: dict = {}
        self.last_omega = float("nan")
        t = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        self.fluid = t(fluid).to(dtype)
        # faces free to move (momentum unknowns; the outlet faces get the convective BC): staircase,
        # both neighbouring cells fluid; cut cells, the face's centre outside the obstacles
        u_free = np.zeros((nx + 1, ny), bool)
        v_free = np.zeros((nx, ny + 1), bool)
        if geometry is None:
            u_free[1:nx] = fluid[:-1] & fluid[1:]
            v_free[:, 1:ny] = fluid[:, :-1] & fluid[:, 1:]
            u_open, v_open = u_free.copy(), v_free
        else:
            u_free[1:nx] = geometry.u_fluid[1:nx]
            v_free[:, 1:ny] = geometry.v_fluid[:, 1:ny]
            u_open, v_open = geometry.u_open > 0, geometry.v_open > 0
            u_open[0] = False
            v_open[:, [0, ny]] = False
        if outflow == "do-nothing":  # the outlet faces move by their momentum equation
            u_free[nx] = fluid[-1]
        self.u_free, self.v_free = t(u_free), t(v_free)
        # faces the pressure gradient corrects: the open ones (cut cells: also those whose centre is
        # inside an obstacle but part of them is not) and the fluid outlet
        corrected = u_open.copy()
        corrected[nx] = fluid[-1]
        self.u_corrected, self.v_corrected = t(corrected), t(v_open)
        keep = u_free.copy()  # faces whose velocity carries over to the next step (the rest restart at 0)
        keep[[0, nx]] = True
        self.u_keep = t(keep)
        if geometry is None:  # ghost faces inside obstacles: mirrored from their real neighbours across the wall
            self.u_ghosts = self._ghosts(np.concatenate([solid[:1], solid], 0) & np.concatenate([solid, solid[-1:]], 0), axis=1)
            self.v_ghosts = self._ghosts(np.concatenate([solid[:, :1], solid], 1) & np.concatenate([solid, solid[:, -1:]], 1), axis=0)
            self.u_aperture = self.v_aperture = self.u_wall = self.v_wall = None
        else:  # the walls enter through the face fractions and the Laplacians' wall terms
            self.u_ghosts = self.v_ghosts = None
            self.u_aperture, self.v_aperture = t(geometry.u_open).to(dtype), t(geometry.v_open).to(dtype)
            u_wall, v_wall = np.zeros((nx + 1, ny)), np.zeros((nx, ny + 1))  # on every face (0 at the boundary)
            u_wall[1:-1], v_wall[:, 1:-1] = geometry.u_wall[1:-1], geometry.v_wall[:, 1:-1]
            self.u_wall, self.v_wall = t(u_wall).to(dtype), t(v_wall).to(dtype)
            self.u_inside, self.v_inside = t(~geometry.u_fluid), t(~geometry.v_fluid)
        self.force_evaluator = ForceEvaluator(labels, self.h, [frontal_height(sh) for sh in self.shapes],
                                              dtype=dtype, device=self.device, cut_cells=geometry)
        self.momentum_history: list[torch.Tensor] = []  # control-volume momentum at the last steps (d/dt)
        self.last_dt, self.time, self.steps = None, 0.0, 0
        self.inflow = t(inflow_profile(ny, height, u_max)).to(dtype)  # at f = 1
        start = self.inflow * self.inflow_factor(0.0)
        self.u = torch.zeros(nx + 1, ny, dtype=dtype, device=self.device)
        self.v = torch.zeros(nx, ny + 1, dtype=dtype, device=self.device)
        self.u[0] = start
        self.u = torch.where(self.u_free, start.expand_as(self.u), self.u)
        self.u[nx] = torch.where(self.fluid[-1] > 0, start, 0.0)
        self.p = torch.zeros(nx, ny, dtype=dtype, device=self.device)
        self.last_increment = torch.zeros_like(self.p)
        self.previous_rhs = None
        self.pressure_iterations = 0
        self.pressure_seconds = 0.0
        self.last_solve = None
        # start from the potential-like flow that satisfies the constraints (at rest when f(0) = 0)
        self.project(1.0)
        if self.viscosity == "implicit":  # its p is a potential, not a pressure the increments build on
            self.p = torch.zeros_like(self.p)

    def inflow_factor(self, t: float) -> float:
        """The waveform's factor at time ``t`` (checked: a non-finite value stops the run)."""
        factor = float(self.waveform(float(t)))
        if not math.isfinite(factor):
            raise BlowUpError(f"the inflow waveform gave {factor} at t = {t:g}")
        return factor

    def inflow_peak(self, t_end: float) -> float:
        """``max |f(t)|`` over ``[0, t_end]``: the step size follows the fastest inflow."""
        if isinstance(self.waveform, Waveform):
            return self.waveform.peak(t_end)
        return inflow_peak(self.waveform, t_end)

    def _ghosts(self, interior: np.ndarray, axis: int):
        """Indices of faces inside solids and of their real neighbours along ``axis`` (flat, in the
        padded face array) with weights, so ghost = -(weighted mean of real neighbours)."""
        shape = interior.shape
        padded = tuple(s + 2 if a == axis else s for a, s in enumerate(shape))
        idx = np.argwhere(interior)
        if len(idx) == 0:
            return None
        real = ~interior
        cols = []
        for step in (-1, 1):
            nb = idx.copy()
            nb[:, axis] += step
            ok = (nb[:, axis] >= 0) & (nb[:, axis] < shape[axis])
            nbc = np.clip(nb, 0, np.array(shape) - 1)
            w = ok & real[nbc[:, 0], nbc[:, 1]]
            nb[:, axis] += 1  # padded index
            cols.append((np.ravel_multi_index(nb.T, padded, mode="clip"), w.astype(float)))
        own = idx.copy()
        own[:, axis] += 1
        total = np.maximum(cols[0][1] + cols[1][1], 1.0)
        t = lambda a, **kw: torch.as_tensor(a, device=self.device, **kw)  # noqa: E731
        return (t(np.ravel_multi_index(own.T, padded)), t(cols[0][0]), t(cols[1][0]),
                t(cols[0][1] / total, dtype=self.dtype), t(cols[1][1] / total, dtype=self.dtype))

    # ------------------------------------------------------------------ the scheme
    def _padded(self, u, v):
        U = torch.cat([-u[:, :1], u, -u[:, -1:]], dim=1)  # no-slip walls
        V = torch.cat([-v[:1], v, v[-1:]], dim=0)  # inlet: v = 0 on the face; outlet: zero gradient
        for padded, ghosts in ((U, self.u_ghosts), (V, self.v_ghosts)):
            if ghosts is not None:
                own, a, b, wa, wb = ghosts
                flat = padded.view(-1)
                flat[own] = -(wa * flat[a] + wb * flat[b])
        return U, V

    def fluid_velocities(self, u, v):
        """``(u, v)`` with the velocity nodes inside obstacles at the walls' velocity, 0 (cut cells:
        the pressure correction moves the nodes of partly open faces too; staircase: they are 0)."""
        if self.walls == "staircase":
            return u, v
        return u.masked_fill(self.u_inside, 0.0), v.masked_fill(self.v_inside, 0.0)

    def laplacians(self, u, v, padded=None):
        """The 5-point Laplacians of ``u`` and ``v`` on every face (0 on the inlet, the walls and, with
        convective outflow, the outlet: the faces no momentum equation moves) with the channel walls'
        mirrored ghosts and the obstacles' walls (staircase: mirrored ghosts; cut cells: the
        ghost-fluid wall term), and with do-nothing outflow a zero-gradient ghost beyond the outlet
        face: linear and homogeneous in (u, v).  With ``padded`` (from :meth:`_padded` of
        :meth:`fluid_velocities`), ``u, v`` are those too."""
        if padded is None:
            u, v = self.fluid_velocities(u, v)
            padded = self._padded(u, v)
        U, V = padded
        if self.outflow == "do-nothing":  # the ghost beyond the outlet face: du/dx = 0 there
            U = torch.cat([U, U[-1:]], dim=0)
        h2 = self.h**2
        lap_u = torch.zeros_like(u)
        inner = (U[2:, 1:-1] + U[:-2, 1:-1] + U[1:-1, 2:] + U[1:-1, :-2] - 4 * U[1:-1, 1:-1]) / h2
        lap_u[1:1 + len(inner)] = inner
        lap_v = torch.zeros_like(v)
        lap_v[:, 1:-1] = (V[2:, 1:-1] + V[:-2, 1:-1] + V[1:-1, 2:] + V[1:-1, :-2] - 4 * V[1:-1, 1:-1]) / h2
        if self.u_wall is not None:
            lap_u = lap_u - self.u_wall * u
            lap_v = lap_v - self.v_wall * v
        return lap_u, lap_v

    def advection(self, a, b, padded_b=None):
        """``-div(a b)`` on every face (conservative central differences; 0 where :meth:`laplacians`
        is), bilinear in the advecting velocity ``a = (u, v)`` and the advected ``b``; ``a = b`` is
        the scheme's advection term (the implicit steady mode's Picard linearisation holds ``a``
        fixed).  Both are :meth:`fluid_velocities`; ``padded_b``: ``b`` through :meth:`_padded` if
        already at hand.  Do-nothing outflow: beyond the outlet face u is its own (zero gradient) and
        v the last column's."""
        (au, av), (bu, bv), h = a, b, self.h
        BU, BV = padded_b if padded_b is not None else self._padded(bu, bv)  # (a needs no ghosts)
        uu = 0.25 * (au[1:] + au[:-1]) * (bu[1:] + bu[:-1])  # at the cell centres
        uv = 0.5 * (BU[1:-1, :-1] + BU[1:-1, 1:]) * 0.5 * (av[:-1] + av[1:])  # at the corners
        hu = torch.zeros_like(bu)
        hu[1:-1] = -((uu[1:] - uu[:-1]) + (uv[:, 1:] - uv[:, :-1])) / h
        if self.outflow == "do-nothing":
            uv_outlet = 0.5 * (BU[-1, :-1] + BU[-1, 1:]) * av[-1]  # the outlet's corners
            hu[-1] = -((au[-1] * bu[-1] - uu[-1]) + (uv_outlet[1:] - uv_outlet[:-1])) / h
        vu = 0.5 * (au[:, :-1] + au[:, 1:]) * 0.5 * (BV[:-1, 1:-1] + BV[1:, 1:-1])
        vv = 0.25 * (av[:, 1:] + av[:, :-1]) * (bv[:, 1:] + bv[:, :-1])
        hv = torch.zeros_like(bv)
        hv[:, 1:-1] = -((vu[1:] - vu[:-1]) + (vv[:, 1:] - vv[:, :-1])) / h
        return hu, hv

    def tendency(self, viscous: bool = True):
        """H(u) on the faces: advection (conservative central differences), plus diffusion unless
        ``viscous=False`` (the implicit scheme treats it separately)."""
        u, v = self.fluid_velocities(self.u, self.v)
        U, V = self._padded(u, v)
        hu, hv = self.advection((u, v), (u, v), (U, V))
        if viscous:
            lap_u, lap_v = self.laplacians(u, v, (U, V))
            hu, hv = hu + self.nu * lap_u, hv + self.nu * lap_v
        return hu * self.u_free, hv * self.v_free

    def _viscous_operator(self, half_dt_nu: float):
        """``d -> d - (dt nu / 2) lap(d)`` on the free faces, for (u, v) stacked in one vector (a
        matrix-free operator for pdekit's Krylov solvers; symmetric positive definite)."""
        nu_size = self.u.numel()

        def apply(x):  # x: (batch, n_u + n_v)
            out = []
            for flat in x:
                du = flat[:nu_size].view_as(self.u) * self.u_free
                dv = flat[nu_size:].view_as(self.v) * self.v_free
                lap_u, lap_v = self.laplacians(du, dv)
                ru = du - half_dt_nu * lap_u
                rv = dv - half_dt_nu * lap_v
                out.append(torch.cat([(ru * self.u_free).reshape(-1), (rv * self.v_free).reshape(-1)]))
            return torch.stack(out)

        return apply

    def _viscous_diagonal(self, apply) -> torch.Tensor:
        """The diagonal of the 5-point viscous operator ``apply`` from five probes: nodes with equal
        ``(i + 2 j) mod 5`` share no stencil, so ``A`` applied to their indicator reads their
        diagonal entries (u and v nodes do not couple)."""
        def colours(shape):
            i, j = torch.meshgrid(torch.arange(shape[0]), torch.arange(shape[1]), indexing="ij")
            return ((i + 2 * j) % 5).reshape(-1)

        colour = torch.cat([colours(self.u.shape), colours(self.v.shape)]).to(self.device)
        probes = torch.stack([(colour == c).to(self.dtype) for c in range(5)])
        applied = apply(probes)
        diagonal = (applied * probes).sum(0)
        return torch.where(diagonal > 0, diagonal, torch.ones_like(diagonal))  # fixed (not free) nodes: 1

    def _implicit_viscosity(self, dt: float):
        """Crank–Nicolson: solve ``u* - (dt nu / 2) lap u* = u_pred`` on the free faces, where the
        caller's ``self.u, self.v`` hold ``u_pred`` (its boundary faces already final)."""
        half = 0.5 * dt * self.nu
        lap_u, lap_v = self.laplacians(self.u, self.v)
        # the correction d = u* - u_pred solves d - half lap d = half lap(u_pred) (the ghosts are linear)
        ru, rv = half * lap_u, half * lap_v
        b = torch.cat([(ru * self.u_free).reshape(-1), (rv * self.v_free).reshape(-1)])
        # symmetric positive definite (I minus a Laplacian with Dirichlet-type wall ghosts; tested):
        # Jacobi-preconditioned CG (cut-cell wall terms, growing as 1/theta, make the diagonal vary),
        # a few iterations at the advective step
        operator = self._viscous_operator(half)
        if self._viscous_jacobi is None or self._viscous_jacobi[0] != half:  # dt is fixed per trajectory
            self._viscous_jacobi = (half, self._viscous_diagonal(operator))
        diagonal = self._viscous_jacobi[1]
        result = pcg(operator, b[None], lambda r: r / diagonal, tol=self.viscous_tol, maxiter=1000)
        if not bool(result.converged):
            raise BlowUpError(f"viscous solve did not converge ({result.status[0]}, relative residual "
                              f"{float(result.residual):.3g})")
        self.viscous_iterations += int(result.iterations)
        n_u = self.u.numel()
        self.u = self.u + result.x[0, :n_u].view_as(self.u) * self.u_free
        self.v = self.v + result.x[0, n_u:].view_as(self.v) * self.v_free

    def _preconditioner(self):
        """(M, omega) for the next pressure solve: SSOR with this solve's omega, else the fixed M."""
        if self.omega is None:
            return self.M, None
        from pdekit.precond import SSOR

        omega = self.omega_chooser.choose() if self.omega_chooser is not None else float(self.omega)
        if omega not in self._ssor:  # the operator is fixed: one factorisation per value of omega
            self._ssor[omega] = SSOR(self.op, omega)
        self.last_omega = omega
        return self._ssor[omega], omega

    def divergence(self) -> torch.Tensor:
        """Net outflow per cell / h^2 (cut cells: face fluxes weighed by the open fractions)."""
        u, v = self.u, self.v
        if self.u_aperture is not None:
            u, v = u * self.u_aperture, v * self.v_aperture
        return (u[1:] - u[:-1] + v[:, 1:] - v[:, :-1]) / self.h * self.fluid

    def residual_floor(self, dt: float) -> float:
        """The smallest pressure-solve residual worth asking for: ``div(u*) / dt`` is known only to
        round-off, ``eps U_max / (h dt)`` per cell (x100 for safety).  A solve stops at
        ``max(tol ||b_full||, floor)`` (see :meth:`project`), so a nearly divergence-free ``u*`` (a steady state, a re-projected
        state, a stale warm start) costs a few iterations instead of an unreachable target."""
        eps = torch.finfo(self.dtype).eps
        return 100.0 * eps * self.u_max / (self.h * dt) * math.sqrt(float(self.fluid.sum()))

    def _gradient(self, q):
        gu = torch.zeros_like(self.u)
        gu[1:-1] = (q[1:] - q[:-1]) / self.h
        gu[-1] = -q[-1] / self.h  # q = 0 at the ghost cell beyond the outlet
        gv = torch.zeros_like(self.v)
        gv[:, 1:-1] = (q[:, 1:] - q[:, :-1]) / self.h
        return gu * self.u_corrected, gv * self.v_corrected

    def project(self, dt: float, incremental: bool = False):
        """Solve ``A q = -div(u*) / dt`` and subtract ``dt grad q`` (outlet faces included): ``q`` is
        the pressure, or with ``incremental`` (whose ``u*`` already holds the old pressure gradient)
        its change since the last step."""
        b = -self.divergence() / dt
        t0 = time.perf_counter()
        # the full pressure's right-hand side (A p^n + b for an increment): its norm sets the target,
        # so both forms leave the same divergence, ||div u|| <= tol ||div u*_full|| (or the floor)
        full = b + self.op(self.p) if incremental else b  # (the operator's result is 0 off the fluid)
        target, b_norm = max(self.tol * float(full.norm()), self.residual_floor(dt)), float(b.norm())
        if b_norm <= target:  # already divergence-free to the tolerance (or round-off)
            q, solve_iterations = torch.zeros_like(self.p), 0
        else:
            solver = fcg if self.flexible else pcg
            M, omega = self._preconditioner()
            x0 = self.last_increment if incremental else self.p
            result = solver(self.op, b, M, x0=x0, tol=target / b_norm, maxiter=20000)
            if not bool(result.converged):
                raise BlowUpError(f"pressure solve did not converge ({result.status[0]}, relative residual "
                                  f"{float(result.residual):.3g} after {int(result.iterations)} iterations)")
            q = result.x * self.fluid
            solve_iterations = int(result.iterations)
            if self.omega_chooser is not None:
                self.omega_chooser.update(omega, solve_iterations)
        self.pressure_seconds += time.perf_counter() - t0
        self.pressure_iterations += solve_iterations
        self.last_solve = (full, solve_iterations)  # with the full pressure after the step: a consistent system
        if incremental:
            self.last_increment = q
            self.p = self.p + q
        else:
            self.p = q
        gu, gv = self._gradient(q)
        self.u = self.u - dt * gu
        self.v = self.v - dt * gv

    def step(self, dt: float):
        implicit = self.viscosity == "implicit"
        Hu, Hv = self.tendency(viscous=not implicit)
        if self.previous_rhs is None:
            au, av = Hu, Hv  # first step: forward Euler
        else:
            au, av = 1.5 * Hu - 0.5 * self.previous_rhs[0], 1.5 * Hv - 0.5 * self.previous_rhs[1]
        self.previous_rhs = (Hu, Hv)
        factor = self.inflow_factor(self.time + dt)
        # convective outflow at the current mean inflow speed (|f|: a reversed inflow still carries
        # the outlet's profile out of the domain rather than in from nowhere)
        outlet = self.u[-1] - dt * self.u_mean * abs(factor) * (self.u[-1] - self.u[-2]) / self.h
        if implicit:  # the explicit half of Crank–Nicolson, and the old pressure gradient (incremental)
            lap_u, lap_v = self.laplacians(self.u, self.v)
            gu, gv = self._gradient(self.p)
            au, av = au - gu, av - gv
            au = au + 0.5 * self.nu * lap_u * self.u_free
            av = av + 0.5 * self.nu * lap_v * self.v_free
        # (faces neither free nor at the inlet/outlet restart from 0: cut cells' partly open faces
        # whose centre is inside an obstacle, which only the pressure moves)
        self.u = self.u * self.u_keep + dt * au
        self.v = self.v * self.v_free + dt * av
        if self.outflow == "convective":  # (do-nothing: the outlet faces have their momentum equation)
            if implicit:  # the outlet faces carry the old pressure gradient like the rest
                outlet = outlet - dt * gu[-1]
            self.u[-1] = torch.where(self.fluid[-1] > 0, outlet, 0.0)
        self.u[0] = self.inflow * factor  # the boundary data at the new time
        if implicit:
            self._implicit_viscosity(dt)
        self.project(dt, incremental=implicit)
        self._record_momentum(dt)
        self.time += dt
        self.steps += 1

    def _record_momentum(self, dt: float):
        momentum = self.force_evaluator.momentum(*self.fluid_velocities(self.u, self.v))
        self.momentum_history = (self.momentum_history + [momentum])[-3:]
        self.last_dt = dt

    def momentum_rate(self) -> torch.Tensor:
        """d/dt of each control volume's momentum: second-order backward difference (first order
        after the first step, zero before it)."""
        m, dt = self.momentum_history, self.last_dt
        if len(m) >= 3:
            return (3 * m[-1] - 4 * m[-2] + m[-3]) / (2 * dt)
        if len(m) == 2:
            return (m[-1] - m[-2]) / dt
        return torch.zeros_like(m[-1]) if m else torch.zeros(len(self.shapes), 2, dtype=self.dtype, device=self.device)

    def force_coefficients(self) -> dict:
        """Per obstacle: ``drag`` and ``lift`` coefficients (control-volume momentum balance, second
        order) and their ``_pressure`` / ``_viscous`` parts from the surface stresses
        (:mod:`datagen.ns_forces`)."""
        u, v = self.fluid_velocities(self.u, self.v)
        return self.force_evaluator.coefficients(u, v, self.p, self.nu, self.u_mean, self.momentum_rate())

    # ------------------------------------------------------------------ state, restart
    STATE_KEYS = ("u", "v", "p", "last_increment")

    def state(self) -> dict:
        """Everything the next steps depend on (fields, the Adams–Bashforth history, the control
        volumes' momentum history, time), as tensors and numbers: ``torch.save`` it and load it
        with ``weights_only=True``.  A run continued from it equals the uninterrupted run bit for bit
        (with a fixed pressure preconditioner; SSOR's learned relaxation starts learning afresh)."""
        state = {k: getattr(self, k).detach().cpu().clone() for k in self.STATE_KEYS}
        if self.previous_rhs is not None:
            state["previous_hu"], state["previous_hv"] = (t.detach().cpu().clone() for t in self.previous_rhs)
        if self.momentum_history:
            state["momentum_history"] = torch.stack(self.momentum_history).cpu()
        state.update(time=float(self.time), steps=int(self.steps), last_dt=self.last_dt, nx=self.nx, ny=self.ny,
                     h=self.h, nu=self.nu, u_max=self.u_max, viscosity=self.viscosity, walls=self.walls,
                     obstacles=json.dumps(self.shapes, sort_keys=True), inflow=describe(self.waveform),
                     outflow=self.outflow)
        return state

    def load_state(self, state: dict) -> None:
        """Continue from :meth:`state` of a flow with the same grid, geometry and physics."""
        mine = self.state()
        # (states saved before cut cells / inflow waveforms existed)
        state = {"walls": "staircase", "inflow": Waveform().to_json(), "outflow": "convective", **state}
        for key in ("nx", "ny", "h", "nu", "u_max", "viscosity", "walls", "obstacles", "inflow", "outflow"):
            if key not in state or state[key] != mine[key]:
                raise ValueError(f"the saved state's {key} ({state.get(key)!r}) differs from this flow's ({mine[key]!r})")
        to = lambda t: t.to(dtype=self.dtype, device=self.device)  # noqa: E731
        for key in self.STATE_KEYS:
            setattr(self, key, to(state[key]))
        self.previous_rhs = (to(state["previous_hu"]), to(state["previous_hv"])) if "previous_hu" in state else None
        self.momentum_history = list(to(state["momentum_history"])) if "momentum_history" in state else []
        self.time, self.steps, self.last_dt = state["time"], state["steps"], state["last_dt"]

    def save_state(self, path) -> None:
        """:meth:`state` to ``path`` atomically (a ``torch.save`` file of tensors and numbers)."""
        from pdekit.files.atomic import atomic_path

        with atomic_path(path) as tmp:
            torch.save(self.state(), tmp)

    def cell_velocity(self) -> torch.Tensor:
        """(2, nx, ny) velocity at the cell centres (zero at centres inside obstacles)."""
        u, v = self.fluid_velocities(self.u, self.v)
        return torch.stack([0.5 * (u[1:] + u[:-1]), 0.5 * (v[:, 1:] + v[:, :-1])]) * torch.as_tensor(~self.solid, device=self.device)

    def cfl(self, dt: float) -> float:
        return float(torch.maximum(self.u.abs().max(), self.v.abs().max())) * dt / self.h
