"""Running a :class:`~datagen.ns_channel.ChannelFlow`: the time step, the time loop with snapshots,
per-step forces and probes, restart from a saved state and a steady-state stop, and the Strouhal
number of a lift history."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from datagen.burgers import BlowUpError
from datagen.ns_channel import FORCE_KEYS, ChannelFlow
from datagen.ns_periodic import whole_multiple


def stable_dt(h: float, nu: float, u_max: float, cfl: float = 0.4, viscosity: str = "explicit") -> float:
    """CFL-limited step ``cfl h / (2.5 U_max)`` (flow speeds up around obstacles); with explicit
    viscosity also Adams–Bashforth 2's diffusion limit ``nu dt / h^2 <= 1/8``, kept with the same
    safety factor (at most 1/2 of the limit's 1/4-form: ``min(cfl, 1/2) h^2 / (4 nu)``)."""
    advective = cfl * h / (2.5 * u_max)
    if viscosity == "implicit":
        return advective
    return min(advective, min(cfl, 0.5) * h * h / (4.0 * nu))


STEADY_SCHEMES = ("march", "implicit")  # how simulate() reaches a steady state (see simulate)

WHY_STAIRCASE_PRESSURE_SYSTEMS = ("a cut-cell pressure operator has face fractions, which the Poisson dataset format "
                                  "has no field for")


class Probes:
    """Bilinear interpolation of the cell-centred velocity and pressure at fixed points (from the
    fluid cell centres around each point; with cut-cell walls the pressure also from the cut cells
    whose centre lies inside an obstacle, whose values extend the pressure smoothly to the wall)."""

    def __init__(self, flow: ChannelFlow, points):
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        ij = points / flow.h - 0.5  # cell-centre coordinates
        lo = np.clip(np.floor(ij).astype(int), 0, [flow.nx - 2, flow.ny - 2])
        w = np.clip(ij - lo, 0.0, 1.0)
        inside = (points[:, 0] >= 0) & (points[:, 0] <= flow.length) & (points[:, 1] >= 0) & (points[:, 1] <= flow.height)
        if not inside.all():
            raise ValueError(f"probe point {points[~inside][0].tolist()} lies outside the channel "
                             f"[0, {flow.length:g}] x [0, {flow.height:g}]")
        corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
        bilinear = np.stack([(w[:, 0] if a else 1 - w[:, 0]) * (w[:, 1] if b else 1 - w[:, 1]) for a, b in corners], 1)

        def weights(blocked):  # next to an obstacle only the cells with values count (renormalised:
            # first order there, so a point on a wall reads the nearest values)
            out = np.where(np.array([[blocked[lo[k, 0] + a, lo[k, 1] + b] for a, b in corners]
                                     for k in range(len(points))]), 0.0, bilinear + 1e-12)
            if (out.sum(1) <= 0).any():
                raise ValueError(f"probe point {points[out.sum(1) <= 0][0].tolist()} lies inside an obstacle")
            return torch.as_tensor(out / out.sum(1, keepdims=True), dtype=flow.dtype, device=flow.device)

        flat = np.stack([np.ravel_multi_index((lo[:, 0] + a, lo[:, 1] + b), (flow.nx, flow.ny)) for a, b in corners], 1)
        self.points = points
        self.index = torch.as_tensor(flat, device=flow.device)
        self.velocity_weights = weights(flow.solid)
        self.pressure_weights = weights(~flow.fluid.cpu().numpy().astype(bool))  # the pressure unknowns

    def __call__(self, flow: ChannelFlow) -> torch.Tensor:
        """(3, n_points): u, v and p at the points."""
        velocity = (flow.cell_velocity().reshape(2, -1)[:, self.index] * self.velocity_weights).sum(-1)
        pressure = (flow.p.reshape(-1)[self.index] * self.pressure_weights).sum(-1)
        return torch.cat([velocity, pressure[None]])


def simulate(flow: ChannelFlow, *, t_end: float, interval: float, warmup: float = 0.0, dt: float | None = None,
             cfl: float = 0.4, name="0", pressure_systems: bool = False, progress=None, initial_state=None,
             steady_tol: float | None = None, probes=None, steady_scheme: str = "march") -> dict:
    """Run ``flow`` for ``warmup + t_end``, keeping snapshots every ``interval`` after the warm-up
    and the force coefficients (and ``probes``: points (x, y) where u, v, p are recorded) at every
    step after it.  ``dt`` defaults to :func:`stable_dt`, shrunk so that ``interval`` is a whole
    number of steps; ``t_end`` must be a whole number of intervals.

    ``initial_state``: a :meth:`ChannelFlow.state` (or a file saved with ``save_state``) to continue
    from.  ``steady_tol``: stop once the velocity changes by less than ``steady_tol U_max`` per unit
    time (``max |u^(n+1) - u^n| / (dt U_max)``); the remaining snapshots and force rows repeat the
    steady state, and ``steady_step`` (else -1) says where it stopped.  ``steady_scheme``:
    ``"march"`` (the time steps alone) or ``"implicit"``: first far larger implicit pseudo-time steps
    (:func:`datagen.ns_steady.solve_steady`) until the RMS steady residual is below ``steady_tol``:
    then ``steady_step`` is 0 and every snapshot is that state (``pseudo_steps`` says how many
    pseudo steps it took); if they do not get there, the march finishes from where they stopped."""
    if initial_state is not None:
        if isinstance(initial_state, (str, Path)):
            initial_state = torch.load(initial_state, map_location="cpu", weights_only=True)
        flow.load_state(initial_state)
    if steady_tol is not None and not steady_tol > 0:
        raise ValueError(f"steady_tol must be > 0, got {steady_tol}")
    if pressure_systems and flow.walls != "staircase":  # (datagen's CLI refuses this up front too)
        raise ValueError(f"pressure_systems needs staircase walls: {WHY_STAIRCASE_PRESSURE_SYSTEMS}")
    if steady_scheme not in STEADY_SCHEMES:
        raise ValueError(f"steady_scheme must be one of {', '.join(STEADY_SCHEMES)}, got {steady_scheme!r}")
    if steady_scheme == "implicit" and steady_tol is None:
        raise ValueError("steady_scheme: implicit needs a steady_tol (it finds a steady state)")
    probe = Probes(flow, probes) if probes is not None and len(probes) else None
    if dt is None:  # the step follows the fastest inflow of the run (a waveform's peak)
        peak = flow.inflow_peak(flow.time + warmup + t_end)
        dt = stable_dt(flow.h, flow.nu, flow.u_max * (peak if peak > 0 else 1.0), cfl, flow.viscosity)
    every = max(1, math.ceil(interval / dt - 1e-9))
    dt = interval / every
    warm_steps = int(round(warmup / dt))
    snapshots = whole_multiple(t_end, interval, "t_end")
    total = warm_steps + snapshots * every
    start = time.perf_counter()
    pseudo, divergence = {"pseudo_steps": 0}, []
    steady_step, change, coefficients = -1, float("nan"), None
    if steady_scheme == "implicit":
        from datagen.ns_steady import solve_steady

        pseudo = solve_steady(flow, dt, steady_tol)
        if pseudo["pseudo_converged"]:  # steady from the start: no march step (else the march finishes)
            steady_step, change = 0, pseudo["pseudo_rms"]
            b, _ = flow.last_solve  # the last projection's divergence, as for a march step
            divergence.append(float(flow.divergence().norm() / max(float(b.norm()) * pseudo["pseudo_dt"], 1e-300)))
    velocity, pressure, forces = [flow.cell_velocity()], [flow.p.clone()], []
    probed = []
    omegas = [flow.last_omega]  # the SSOR relaxation of the solve behind each snapshot (NaN: not SSOR)
    systems = {"rhs": [], "solution": [], "iterations": []}
    for step in range(1, total + 1):
        if steady_step < 0:
            before = flow.u.clone() if steady_tol is not None else None
            flow.step(dt)
            c = flow.cfl(dt)  # each pressure solve syncs anyway: checking every step is cheap
            if not math.isfinite(c) or c > 1.0:
                raise BlowUpError(f"sample {name} blew up at step {step} (t = {step * dt:.4g}, CFL {c:.3g} > 1 or NaN): "
                                  "reduce --cfl or raise the resolution")
            b, iterations = flow.last_solve
            divergence.append(float(flow.divergence().norm() / max(float(b.norm()) * dt, 1e-300)))
            if steady_tol is not None:
                change = float((flow.u - before).abs().max()) / (dt * flow.u_max)
                if change < steady_tol:
                    steady_step = step
            coefficients = None  # a new state: evaluated when recorded (not during the warm-up)
        if step > warm_steps:
            if coefficients is None:
                coefficients = flow.force_coefficients()
            forces.append(coefficients)
            if probe is not None:
                probed.append(probe(flow))
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
        "steps": total if steady_step < 0 else steady_step, "dt": dt, "steady_step": steady_step,
        "steady_change": change, "pressure_iterations": flow.pressure_iterations,
        "pressure_seconds": flow.pressure_seconds, "viscous_iterations": flow.viscous_iterations,
        "wall_seconds": time.perf_counter() - start,
        "relative_divergence": torch.as_tensor(divergence),
        "pressure_omega": torch.as_tensor(omegas, dtype=torch.float64), **pseudo,
    }
    for key in FORCE_KEYS:
        out[key] = torch.stack([f[key] for f in forces]) if forces else torch.zeros(0, count)
    if probe is not None:
        out["probes"] = torch.stack(probed) if probed else torch.zeros(0, 3, len(probe.points))
        out["probe_points"] = torch.as_tensor(probe.points)
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
