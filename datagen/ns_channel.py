"""2-D incompressible channel flow past obstacles: fractional-step projection on a staggered grid.

Grid (marker-and-cell): pressure at the centres of ``nx x ny`` square cells of side ``h``; ``u`` on
the ``nx + 1`` vertical faces of each row, ``v`` on the ``ny + 1`` horizontal faces of each
column.  Obstacles are solid cells (staircase); a face touching a solid cell carries zero normal
velocity, and no-slip on the tangential velocity uses a mirrored ghost value (wall half a cell
away), as do the channel walls.

Boundaries: inflow (x = 0) a parabolic profile; no-slip walls (y = 0, H); outflow (x = L)
convective, ``du/dt + U_mean du/dx = 0``, with ``p = 0`` half a cell beyond it.

One step (time step ``dt`` fixed per trajectory, CFL-limited; a hard check stops at CFL > 1):

1. ``u* = u + dt (3/2 H(u^n) - 1/2 H(u^(n-1)))``: Adams–Bashforth 2 for advection (central,
   conservative) and diffusion (explicit);
2. ``A p = -div(u*) / dt`` with ``A = -div grad`` the pdekit :class:`DiffusionOperator` on the
   fluid cells (Neumann at the inlet, walls and obstacles, Dirichlet at the outlet), solved with
   pdekit's Krylov solvers (AMG-PCG by default; any pdekit preconditioner, including a trained
   network through FCG);
3. ``u = u* - dt grad p``, so ``div u = dt (A p - b)``: the divergence after each step equals the
   pressure solve's residual (``||div u|| <= tol ||div u*||``).

Forces on each obstacle: pressure on its faces plus wall shear, from the cells next to it; drag
and lift coefficients ``2 F / (U_mean^2 D)`` with ``D`` the obstacle's frontal height (rho = 1).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from datagen.burgers import BlowUpError
from datagen.obstacles import frontal_height, rasterize
from pdekit import BoundaryConditions, DiffusionOperator, Grid
from pdekit.boundary import Dirichlet, Neumann
from pdekit.errors import SingularOperatorError
from pdekit.krylov import fcg, pcg

PRECONDITIONERS = ("amg", "jacobi", "ilu", "ssor", "none")


def inflow_profile(ny: int, height: float, u_max: float) -> np.ndarray:
    """Parabola ``4 U y (H - y) / H^2`` at the cell centres, raised by ``U h^2 / H^2``: with the
    mirrored wall ghosts this is the exact discrete Poiseuille profile (a steady state of the
    scheme), differing from the parabola by O(h^2)."""
    h = height / ny
    y = (np.arange(ny) + 0.5) * h
    return 4.0 * u_max * (y * (height - y) + h * h / 4.0) / height**2


def make_preconditioner(spec, op: DiffusionOperator, device=None):
    """``spec``: ``"amg"``, ``"jacobi"``, ``"ilu"``, ``"none"``, a path to a trained pdekit
    checkpoint (loaded with :func:`pdekit.precond.load`), or any object with ``__call__`` (a
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
    M = precond.load(spec, op, device=device)  # the network runs where the flow does
    return M, not M.linear  # a network needs flexible CG; the neural multigrid is a fixed SPD map


class ChannelFlow:
    """State and operators of one channel-flow trajectory (see the module docstring)."""

    def __init__(self, shapes, *, nx: int, ny: int, height: float, nu: float, u_max: float,
                 pressure_precond="amg", tol: float = 1e-8, dtype=torch.float64, device=None,
                 omega="auto", seed: int = 0):
        self.nx, self.ny, self.h = nx, ny, height / ny
        self.length, self.height = nx * self.h, height
        self.nu, self.u_max, self.u_mean = nu, u_max, 2.0 * u_max / 3.0
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
        fluid = ~solid
        grid = Grid((nx, ny), spacing=self.h, origin=self.h / 2)
        bc = BoundaryConditions(default=Neumann(0.0), faces={"x+": Dirichlet(0.0)}, obstacle=Neumann(0.0))
        try:
            self.op = DiffusionOperator(grid, mask=fluid, bc=bc)
        except SingularOperatorError:
            raise ValueError("the obstacles enclose fluid cut off from the outlet") from None
        self.M, self.flexible = make_preconditioner(pressure_precond, self.op, self.device)
        # SSOR: a fixed omega, or one an online bandit learns from solve to solve (pdekit.tuning)
        self.omega = omega if pressure_precond == "ssor" else None
        self.omega_chooser = None
        if self.omega == "auto":
            from pdekit.tuning import TsallisINF

            self.omega_chooser = TsallisINF(seed=seed)
        self._ssor: dict = {}
        self.last_omega = float("nan")
        t = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        self.fluid = t(fluid).to(dtype)
        # faces free to move: both neighbouring cells fluid (the outlet faces get the convective BC)
        u_free = np.zeros((nx + 1, ny), bool)
        u_free[1:nx] = fluid[:-1] & fluid[1:]
        v_free = np.zeros((nx, ny + 1), bool)
        v_free[:, 1:ny] = fluid[:, :-1] & fluid[:, 1:]
        self.u_free, self.v_free = t(u_free), t(v_free)
        corrected = u_free.copy()  # faces the pressure gradient corrects: free ones and the fluid outlet
        corrected[nx] = fluid[-1]
        self.u_corrected = t(corrected)
        # ghost faces inside obstacles: mirrored from their real neighbours across the wall
        self.u_ghosts = self._ghosts(np.concatenate([solid[:1], solid], 0) & np.concatenate([solid, solid[-1:]], 0), axis=1)
        self.v_ghosts = self._ghosts(np.concatenate([solid[:, :1], solid], 1) & np.concatenate([solid, solid[:, -1:]], 1), axis=0)
        self._force_stencil()
        self.inflow = t(inflow_profile(ny, height, u_max)).to(dtype)
        self.u = torch.zeros(nx + 1, ny, dtype=dtype, device=self.device)
        self.v = torch.zeros(nx, ny + 1, dtype=dtype, device=self.device)
        self.u[0] = self.inflow
        self.u = torch.where(self.u_free, self.inflow.expand_as(self.u), self.u)
        self.u[nx] = torch.where(self.fluid[-1] > 0, self.inflow, 0.0)
        self.p = torch.zeros(nx, ny, dtype=dtype, device=self.device)
        self.previous_rhs = None
        self.pressure_iterations = 0
        self.pressure_seconds = 0.0
        self.last_solve = None
        self.project(1.0)  # start from the potential-like flow that satisfies the constraints

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

    def _force_stencil(self):
        """Per obstacle boundary face: the fluid cell next to it, the obstacle, and signs."""
        labels = self.labels
        rows = {"cell": [], "obstacle": [], "px": [], "py": [], "shear_x": [], "shear_y": []}
        for axis in (0, 1):
            lo = labels[:-1] if axis == 0 else labels[:, :-1]
            hi = labels[1:] if axis == 0 else labels[:, 1:]
            for fluid_side, solid_side, sign in ((lo, hi, 1.0), (hi, lo, -1.0)):
                where = (fluid_side == 0) & (solid_side > 0)
                idx = np.argwhere(where)
                cells = idx.copy()
                if sign < 0:
                    cells[:, axis] += 1  # the fluid cell is the upper one
                rows["cell"].append(np.ravel_multi_index(cells.T, labels.shape))
                rows["obstacle"].append(solid_side[where] - 1)
                n = len(idx)
                rows["px"].append(np.full(n, sign if axis == 0 else 0.0))
                rows["py"].append(np.full(n, sign if axis == 1 else 0.0))
                rows["shear_x"].append(np.full(n, 1.0 if axis == 1 else 0.0))  # horizontal wall: shear along x
                rows["shear_y"].append(np.full(n, 1.0 if axis == 0 else 0.0))
        self._forces = {k: torch.as_tensor(np.concatenate(v), device=self.device) for k, v in rows.items()}
        for k in ("px", "py", "shear_x", "shear_y"):
            self._forces[k] = self._forces[k].to(self.dtype)
        self.frontal = torch.as_tensor([frontal_height(s) for s in self.shapes], dtype=self.dtype)

    # ------------------------------------------------------------------ the scheme
    def _padded(self):
        u, v = self.u, self.v
        U = torch.cat([-u[:, :1], u, -u[:, -1:]], dim=1)  # no-slip walls
        V = torch.cat([-v[:1], v, v[-1:]], dim=0)  # inlet: v = 0 on the face; outlet: zero gradient
        for padded, ghosts in ((U, self.u_ghosts), (V, self.v_ghosts)):
            if ghosts is not None:
                own, a, b, wa, wb = ghosts
                flat = padded.view(-1)
                flat[own] = -(wa * flat[a] + wb * flat[b])
        return U, V

    def tendency(self):
        """H(u): advection (conservative central differences) and diffusion on the faces."""
        u, v, h, nu = self.u, self.v, self.h, self.nu
        U, V = self._padded()
        u_cell = 0.5 * (u[1:] + u[:-1])
        u_corner = 0.5 * (U[1:-1, :-1] + U[1:-1, 1:])
        v_corner = 0.5 * (v[:-1] + v[1:])
        uv = u_corner * v_corner
        lap_u = (U[2:, 1:-1] + U[:-2, 1:-1] + U[1:-1, 2:] + U[1:-1, :-2] - 4 * U[1:-1, 1:-1]) / h**2
        hu = -((u_cell[1:] ** 2 - u_cell[:-1] ** 2) + (uv[:, 1:] - uv[:, :-1])) / h + nu * lap_u
        v_cell = 0.5 * (v[:, 1:] + v[:, :-1])
        v_corner2 = 0.5 * (V[:-1, 1:-1] + V[1:, 1:-1])
        u_corner2 = 0.5 * (u[:, :-1] + u[:, 1:])
        uv2 = u_corner2 * v_corner2
        lap_v = (V[2:, 1:-1] + V[:-2, 1:-1] + V[1:-1, 2:] + V[1:-1, :-2] - 4 * V[1:-1, 1:-1]) / h**2
        hv = -((uv2[1:] - uv2[:-1]) + (v_cell[:, 1:] ** 2 - v_cell[:, :-1] ** 2)) / h + nu * lap_v
        Hu = torch.zeros_like(u)
        Hu[1:-1] = hu
        Hv = torch.zeros_like(v)
        Hv[:, 1:-1] = hv
        return Hu * self.u_free, Hv * self.v_free

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
        u, v = self.u, self.v
        return (u[1:] - u[:-1] + v[:, 1:] - v[:, :-1]) / self.h * self.fluid

    def project(self, dt: float):
        """Solve ``A p = -div(u*) / dt`` and subtract ``dt grad p`` (outlet faces included)."""
        b = -self.divergence() / dt
        t0 = time.perf_counter()
        if float(b.abs().max()) == 0.0:
            solve_iterations = 0
        else:
            solver = fcg if self.flexible else pcg
            M, omega = self._preconditioner()
            result = solver(self.op, b, M, x0=self.p, tol=self.tol, maxiter=20000)
            if not bool(result.converged):
                raise BlowUpError(f"pressure solve did not converge ({result.status[0]}, relative residual "
                                  f"{float(result.residual):.3g} after {int(result.iterations)} iterations)")
            self.p = result.x * self.fluid
            solve_iterations = int(result.iterations)
            if self.omega_chooser is not None:
                self.omega_chooser.update(omega, solve_iterations)
        self.pressure_seconds += time.perf_counter() - t0
        self.pressure_iterations += solve_iterations
        self.last_solve = (b, solve_iterations)
        p, h = self.p, self.h
        gu = torch.zeros_like(self.u)
        gu[1:-1] = (p[1:] - p[:-1]) / h
        gu[-1] = -p[-1] / h  # p = 0 at the ghost cell beyond the outlet
        self.u = self.u - dt * gu * self.u_corrected
        gv = torch.zeros_like(self.v)
        gv[:, 1:-1] = (p[:, 1:] - p[:, :-1]) / h
        self.v = self.v - dt * gv * self.v_free

    def step(self, dt: float):
        Hu, Hv = self.tendency()
        if self.previous_rhs is None:
            au, av = Hu, Hv  # first step: forward Euler
        else:
            au, av = 1.5 * Hu - 0.5 * self.previous_rhs[0], 1.5 * Hv - 0.5 * self.previous_rhs[1]
        self.previous_rhs = (Hu, Hv)
        outlet = self.u[-1] - dt * self.u_mean * (self.u[-1] - self.u[-2]) / self.h  # convective outflow
        self.u = self.u + dt * au
        self.v = self.v + dt * av
        self.u[-1] = torch.where(self.fluid[-1] > 0, outlet, 0.0)
        self.project(dt)

    def forces(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Drag and lift coefficients of every obstacle."""
        f, h, mu = self._forces, self.h, self.nu
        p = self.p.reshape(-1)[f["cell"]]
        uc = (0.5 * (self.u[1:] + self.u[:-1])).reshape(-1)[f["cell"]]
        vc = (0.5 * (self.v[:, 1:] + self.v[:, :-1])).reshape(-1)[f["cell"]]
        # pressure on the face; wall shear mu * u_tangential / (h / 2) over a face of length h
        fx = f["px"] * p * h + f["shear_x"] * 2 * mu * uc
        fy = f["py"] * p * h + f["shear_y"] * 2 * mu * vc
        count = len(self.shapes)
        Fx = torch.zeros(count, dtype=self.dtype, device=self.device).index_add_(0, f["obstacle"], fx)
        Fy = torch.zeros(count, dtype=self.dtype, device=self.device).index_add_(0, f["obstacle"], fy)
        scale = 2.0 / (self.u_mean**2 * self.frontal.to(self.device))
        return Fx * scale, Fy * scale

    def cell_velocity(self) -> torch.Tensor:
        """(2, nx, ny) velocity at the cell centres (zero in solids)."""
        return torch.stack([0.5 * (self.u[1:] + self.u[:-1]), 0.5 * (self.v[:, 1:] + self.v[:, :-1])]) * self.fluid

    def cfl(self, dt: float) -> float:
        return float(torch.maximum(self.u.abs().max(), self.v.abs().max())) * dt / self.h


def stable_dt(h: float, nu: float, u_max: float, cfl: float = 0.4) -> float:
    """CFL-limited step: ``cfl h / (2.5 U_max)`` (flow speeds up around obstacles) and the explicit
    diffusion limit ``h^2 / (8 nu)`` with the same safety factor."""
    return min(cfl * h / (2.5 * u_max), cfl * h * h / (4.0 * nu))


def simulate(flow: ChannelFlow, *, t_end: float, interval: float, warmup: float = 0.0, dt: float | None = None,
             cfl: float = 0.4, name="0", pressure_systems: bool = False, progress=None) -> dict:
    """Run ``flow`` for ``warmup + t_end``, keeping snapshots every ``interval`` after the warm-up
    and drag/lift at every step after it.  ``dt`` defaults to :func:`stable_dt`, shrunk so that
    ``interval`` is a whole number of steps."""
    dt = dt or stable_dt(flow.h, flow.nu, flow.u_max, cfl)
    every = max(1, math.ceil(interval / dt - 1e-9))
    dt = interval / every
    warm_steps = int(round(warmup / dt))
    snapshots = int(round(t_end / interval))
    total = warm_steps + snapshots * every
    start = time.perf_counter()
    velocity, pressure, drag, lift = [flow.cell_velocity()], [flow.p.clone()], [], []
    omegas = [flow.last_omega]  # the SSOR relaxation of the solve behind each snapshot (NaN: not SSOR)
    systems = {"rhs": [], "solution": [], "iterations": []}
    divergence = []
    for step in range(1, total + 1):
        flow.step(dt)
        c = flow.cfl(dt)  # each pressure solve syncs anyway: checking every step is cheap
        if not math.isfinite(c) or c > 1.0:
            raise BlowUpError(f"sample {name} blew up at step {step} (t = {step * dt:.4g}, CFL {c:.3g} > 1 or NaN): "
                              "reduce --cfl or raise the resolution")
        b, iterations = flow.last_solve
        divergence.append(float(flow.divergence().norm() / max(float(b.norm()) * dt, 1e-300)))
        if step > warm_steps:
            cd, cl = flow.forces()
            drag.append(cd)
            lift.append(cl)
            if (step - warm_steps) % every == 0:
                velocity.append(flow.cell_velocity())
                pressure.append(flow.p.clone())
                omegas.append(flow.last_omega)
                if pressure_systems:
                    systems["rhs"].append(b)
                    systems["solution"].append(pressure[-1])
                    systems["iterations"].append(iterations)
        elif step == warm_steps:
            velocity, pressure, omegas = [flow.cell_velocity()], [flow.p.clone()], [flow.last_omega]
        if progress is not None:
            progress(step, total)
    count = len(flow.shapes)
    out = {
        "velocity": torch.stack(velocity), "pressure": torch.stack(pressure),
        "t": torch.arange(snapshots + 1, dtype=torch.float64) * interval,
        "t_force": (torch.arange(1, total - warm_steps + 1, dtype=torch.float64)) * dt,
        "drag": torch.stack(drag) if drag else torch.zeros(0, count),
        "lift": torch.stack(lift) if lift else torch.zeros(0, count),
        "steps": total, "dt": dt, "pressure_iterations": flow.pressure_iterations,
        "pressure_seconds": flow.pressure_seconds, "wall_seconds": time.perf_counter() - start,
        "relative_divergence": torch.as_tensor(divergence),
        "pressure_omega": torch.as_tensor(omegas, dtype=torch.float64),
    }
    if pressure_systems:
        out["pressure_systems"] = {k: (torch.stack(v) if k in ("rhs", "solution") else torch.as_tensor(v))
                                   for k, v in systems.items()}
    return out


def strouhal(t: np.ndarray, lift: np.ndarray, length: float, speed: float) -> float:
    """Shedding frequency ``f L / U`` from a lift history: mean period between upward crossings of
    its mean (linearly interpolated).  NaN if fewer than two periods are present."""
    t, lift = np.asarray(t, float), np.asarray(lift, float) - np.mean(lift)
    up = np.flatnonzero((lift[:-1] < 0) & (lift[1:] >= 0))
    if len(up) < 3:
        return float("nan")
    crossings = t[up] - lift[up] * (t[up + 1] - t[up]) / (lift[up + 1] - lift[up])
    return float(length / (np.diff(crossings).mean() * speed))
