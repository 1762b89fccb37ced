"""Navier–Stokes trajectories at named difficulty levels, two families:

* ``periodic``: vorticity on the periodic unit square (:mod:`datagen.ns_periodic`), levels along
  viscosity and resolution, Gaussian-random-field initial vorticity;
* ``obstacles``: channel flow past random obstacles (:mod:`datagen.ns_channel`), levels named
  ``<geometry>-<physics>`` along the obstacle count/shapes and the Reynolds number.

Each trajectory is a pure function of ``(level, resolution, seed)``; the functions here return
per-sample numpy arrays for :mod:`datagen.runner`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import torch

from datagen.ns_periodic import Forcing, gaussian_random_field, is_whole_multiple, simulate as simulate_periodic


@dataclass(frozen=True)
class PeriodicLevel:
    name: str
    viscosity: float
    resolution: int  # default grid (n x n); --resolution overrides
    t_end: float  # simulated time kept after the warm-up
    interval: float  # time between snapshots
    warmup: float
    forcing: str  # "fno" | "kolmogorov" | "none"
    forcing_amplitude: float
    forcing_wavenumber: int
    drag: float  # linear damping mu (w_t = ... - mu w)
    grf_alpha: float
    grf_tau: float
    cfl: float
    max_dt: float
    description: str

    def problems(self):
        checks = [(self.viscosity > 0, "viscosity must be > 0"), (self.resolution >= 8, "resolution must be >= 8"),
                  (self.interval > 0 and self.t_end >= self.interval, "need 0 < interval <= t_end"),
                  (self.interval <= 0 or is_whole_multiple(self.t_end, self.interval), "t_end must be a whole number of intervals"),
                  (self.warmup >= 0, "warmup must be >= 0"), (0 < self.cfl <= 1, "cfl must be in (0, 1]"),
                  (self.forcing in ("fno", "kolmogorov", "none"), "forcing must be fno, kolmogorov or none"),
                  (self.max_dt > 0, "max_dt must be > 0")]
        return [message for ok, message in checks if not ok]


def _periodic(name, nu, n, t_end, description):
    return PeriodicLevel(name, nu, n, t_end, 1.0, 0.0, "fno", 0.1, 4, 0.0, 2.5, 7.0, 0.5, 1e-2, description)


PERIODIC_LEVELS = {  # the FNO benchmark's three viscosities and time spans
    "easy": _periodic("easy", 1e-3, 64, 50.0, "nu = 1e-3 (smooth, laminar), 64^2, T = 50"),
    "medium": _periodic("medium", 1e-4, 128, 30.0, "nu = 1e-4 (turbulent-like, thinner filaments), 128^2, T = 30"),
    "hard": _periodic("hard", 1e-5, 256, 20.0, "nu = 1e-5 (near inviscid, cascade to the grid scale), 256^2, T = 20"),
}


@dataclass(frozen=True)
class ObstacleLevel:
    name: str
    reynolds: float  # U_max H / nu
    obstacles: tuple[int, int]  # min, max count
    shapes: tuple[str, ...]  # drawn uniformly from circle / rectangle / polygon
    size: tuple[float, float]  # bounding radius range, fractions of the channel height
    resolution: int  # default cells across the channel (ny); nx = aspect * ny
    aspect: float  # channel length / height
    t_end: float
    interval: float
    warmup: float
    cfl: float
    description: str
    # explicit physics and geometry (a spec file's length / height / u_max / viscosity / obstacle
    # list / probes; see translate_spec); the named levels are dimensionless (H = U_max = 1)
    height: float = 1.0
    u_max: float = 1.0
    geometry: str = ""  # JSON list of shapes: every sample uses it ("" = draw per seed)
    probes: str = ""  # JSON list of points (x, y) where u, v, p are recorded every step
    viscous_scheme: str = "explicit"  # "explicit" (Adams–Bashforth 2) | "implicit" (Crank–Nicolson)
    steady_tol: float = 0.0  # > 0: stop once the velocity changes by less than this (x U_max per unit time)
    walls: str = "staircase"  # obstacles as solid cells | "cut-cell": their true boundaries (second order)
    inflow: str = ""  # the inflow's waveform f(t) as canonical JSON (datagen.inflow; "" = constant 1)
    steady_scheme: str = "march"  # with steady_tol: "implicit" reaches the steady state by pseudo-time steps first
    outflow: str = "convective"  # "do-nothing": -p n + nu du/dn = 0 (the DFG benchmarks' outflow)

    @staticmethod
    def translate_spec(spec: dict, source: str) -> dict:
        """A spec file's physical keys as level axes: ``length`` -> ``aspect``, ``viscosity`` ->
        ``reynolds``, an ``obstacles`` list of shapes -> ``geometry`` (and the count, kinds and
        sizes that describe it), a ``probes`` list of points -> ``probes``."""
        from datagen.levelspec import positive
        from datagen.obstacles import bounding_radius, explicit_shape

        spec = dict(spec)
        for mine, theirs in (("length", "aspect"), ("viscosity", "reynolds")):
            if mine in spec and theirs in spec:
                raise ValueError(f"{source}: give {mine} or {theirs}, not both")
        try:
            height = positive(spec.get("height", 1.0), "height")
            if "length" in spec:
                spec["aspect"] = positive(spec.pop("length"), "length") / height
            if "viscosity" in spec:
                nu = positive(spec.pop("viscosity"), "viscosity")
                spec["reynolds"] = positive(spec.get("u_max", 1.0), "u_max") * height / nu
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
        geometry = spec.get("geometry")
        if isinstance(geometry, str) and geometry:  # the stored form: checked like an obstacle list
            from datagen.obstacles import stored_shape

            try:
                shapes = json.loads(geometry)
            except json.JSONDecodeError as err:
                raise ValueError(f"{source}: geometry is not JSON ({err})") from None
            if not isinstance(shapes, list):
                raise ValueError(f"{source}: geometry must be a JSON list of shapes")
            spec["geometry"] = json.dumps([stored_shape(o, f"{source}: geometry shape {k + 1}")
                                           for k, o in enumerate(shapes)])
        obstacles = spec.get("obstacles")
        if isinstance(obstacles, list) and all(isinstance(o, dict) for o in obstacles) and obstacles:
            shapes = [explicit_shape(o, f"{source}: obstacle {k + 1}") for k, o in enumerate(obstacles)]
            radii = [bounding_radius(shape) / height for shape in shapes]
            spec.update(obstacles=[len(shapes)] * 2, shapes=sorted({shape["shape"] for shape in shapes}),
                        size=[min(radii), max(radii)], geometry=json.dumps(shapes))
        if "inflow" in spec:  # a name or a mapping -> its canonical JSON (checked here, one line)
            from datagen.inflow import Waveform

            waveform = Waveform.parse(spec["inflow"], f"{source}: inflow")
            spec["inflow"] = "" if waveform == Waveform() else waveform.to_json()
        if "probes" in spec and not isinstance(spec["probes"], str):  # (a string: already translated)
            from datagen.obstacles import point

            points = spec["probes"]
            if not isinstance(points, list):
                raise ValueError(f"{source}: probes must be a list of points [x, y], got {points!r}")
            spec["probes"] = json.dumps([point(q, f"{source}: probe {k + 1}") for k, q in enumerate(points)])
        return spec

    def problems(self):
        from datagen.ns_channel import OUTFLOWS, VISCOSITY, WALLS
        from datagen.ns_channel_run import STEADY_SCHEMES
        from datagen.obstacles import SHAPES

        checks = [(self.reynolds > 0, "reynolds must be > 0"),
                  (0 <= self.obstacles[0] <= self.obstacles[1], "obstacles must be [min, max] with 0 <= min <= max"),
                  (len(self.shapes) > 0 and set(self.shapes) <= set(SHAPES), f"shapes must be a non-empty list from {SHAPES}"),
                  (0 < self.size[0] <= self.size[1] < 0.5, "size must be [min, max] fractions of the height below 0.5"),
                  (self.resolution >= 8, "resolution must be >= 8"), (self.aspect >= 1, "aspect must be >= 1"),
                  (self.interval > 0 and self.t_end >= self.interval, "need 0 < interval <= t_end"),
                  (self.interval <= 0 or is_whole_multiple(self.t_end, self.interval), "t_end must be a whole number of intervals"),
                  (self.warmup >= 0, "warmup must be >= 0"), (0 < self.cfl <= 1, "cfl must be in (0, 1]"),
                  (self.height > 0 and self.u_max > 0, "height and u_max must be > 0"),
                  (self.viscous_scheme in VISCOSITY, f"viscous_scheme must be one of {', '.join(VISCOSITY)}"),
                  (self.steady_tol >= 0, "steady_tol must be >= 0 (0: run to t_end)"),
                  (self.walls in WALLS, f"walls must be one of {', '.join(WALLS)}"),
                  (self.walls != "cut-cell" or self.viscous_scheme == "implicit",
                   "walls: cut-cell needs viscous_scheme: implicit"),
                  (self.outflow in OUTFLOWS, f"outflow must be one of {', '.join(OUTFLOWS)}"),
                  (self.steady_scheme in STEADY_SCHEMES, f"steady_scheme must be one of {', '.join(STEADY_SCHEMES)}"),
                  (self.steady_scheme != "implicit" or self.steady_tol > 0,
                   "steady_scheme: implicit needs steady_tol > 0"),
                  (self.steady_scheme != "implicit" or not self.inflow,
                   "steady_scheme: implicit needs a constant inflow")]
        problems = [message for ok, message in checks if not ok]
        length = self.aspect * self.height
        for x, y in json.loads(self.probes) if self.probes else []:
            if not (0 <= x <= length and 0 <= y <= self.height):
                problems.append(f"probe point {[x, y]} lies outside the channel [0, {length:g}] x [0, {self.height:g}]")
        return problems


GEOMETRY = {  # obstacle count, shapes, size range (bounding radius / H)
    "easy": ((1, 1), ("circle",), (0.08, 0.12), "one circle"),
    "medium": ((2, 4), ("circle", "rectangle"), (0.06, 0.12), "2-4 circles/rectangles"),
    "hard": ((5, 8), ("circle", "rectangle", "polygon"), (0.05, 0.10), "5-8 circles/rectangles/convex polygons"),
}
# Re = U_max H / nu and cells across the channel: the grid Reynolds number U h / nu stays <= 24
PHYSICS = {"easy": (100.0, 64), "medium": (1000.0, 64), "hard": (3000.0, 128)}


def _obstacle_levels():
    levels = {}
    for g, (count, shapes, size, g_text) in GEOMETRY.items():
        for p, (re, ny) in PHYSICS.items():
            name = f"{g}-{p}"
            levels[name] = ObstacleLevel(name, re, count, shapes, size, ny, 4.0, 8.0, 0.2, 2.0, 0.4,
                                         f"{g_text}, Re = {re:g}, {4 * ny}x{ny}")
    for name in ("easy", "medium", "hard"):  # both axes at once
        levels[name] = levels[f"{name}-{name}"]
    return levels


OBSTACLE_LEVELS = _obstacle_levels()
FAMILIES = {"periodic": (PeriodicLevel, PERIODIC_LEVELS), "obstacles": (ObstacleLevel, OBSTACLE_LEVELS)}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------- periodic
def periodic_samples(level: PeriodicLevel, resolution: int, seeds, names, *, device=None,
                     dtype=torch.float64) -> list[dict]:
    """One batch of periodic trajectories (one per seed)."""
    start = time.perf_counter()
    w0 = torch.stack([gaussian_random_field(resolution, torch.Generator().manual_seed(int(s)), level.grf_alpha,
                                            level.grf_tau, dtype=torch.float64) for s in seeds])
    forcing = Forcing(level.forcing, level.forcing_amplitude, level.forcing_wavenumber)
    out = simulate_periodic(w0.to(device=device, dtype=dtype), nu=level.viscosity, t_end=level.t_end,
                            interval=level.interval, forcing=forcing, drag=level.drag, warmup=level.warmup,
                            cfl=level.cfl, max_dt=level.max_dt, names=names)
    wall = (time.perf_counter() - start) / len(seeds)  # the batch's time, shared out
    vorticity = out["vorticity"].cpu().numpy().astype(np.float32)
    return [{"vorticity": vorticity[i], "t": out["t"].numpy(), "viscosity": level.viscosity,
             "reynolds": 1.0 / level.viscosity, "steps": int(out["steps"][i]), "max_cfl": float(out["max_cfl"][i]),
             "wall_seconds": wall} for i in range(len(seeds))]


# ---------------------------------------------------------------------------------- obstacles
def draw_obstacles(level: ObstacleLevel, seed: int) -> list[dict]:
    from datagen.obstacles import place

    rng = _rng(seed)
    count = int(rng.integers(level.obstacles[0], level.obstacles[1] + 1))
    if count == 0:
        return []
    x_range = (0.4 / level.aspect, 0.6) if count > 1 else (0.5 / level.aspect, 1.0 / level.aspect)
    return place(rng, count, level.shapes, level.size, level.aspect, 1.0, x_range=x_range)


MAX_STEPS = 2_000_000  # time steps of one channel trajectory at most (about a day of CPU at 64 cells across)


def check_step_count(level: ObstacleLevel, ny: int, nu: float) -> None:
    """Refuse, before any work, a run whose stable time step makes it take millions of steps (a spec
    with a huge viscosity and explicit viscous terms would otherwise run for days with no output)."""
    from datagen.ns_channel_run import stable_dt

    from datagen.inflow import Waveform

    peak = Waveform.parse(level.inflow or "constant").peak(level.t_end + level.warmup)
    dt = stable_dt(level.height / ny, nu, level.u_max * (peak if peak > 0 else 1.0), level.cfl, level.viscous_scheme)
    steps = (level.t_end + level.warmup) / dt
    if not steps <= MAX_STEPS:
        hint = "; viscous_scheme: implicit lifts the viscous limit" if level.viscous_scheme == "explicit" else ""
        raise ValueError(f"level {level.name}: the stable time step {dt:.3g} needs {steps:.3g} steps for "
                         f"t_end + warmup = {level.t_end + level.warmup:g} (at most {MAX_STEPS:.0e}){hint}")


def obstacle_sample(level: ObstacleLevel, resolution: int, seed: int, name, *, pressure_precond="amg",
                    pressure_tol: float = 1e-6, pressure_systems: bool = False, device=None, progress=None,
                    pressure_omega="auto") -> dict:
    """One channel-flow trajectory (named levels: channel height 1, U_max = 1, nu = 1 / Re; a spec
    may set height, u_max and an explicit geometry)."""
    from datagen.ns_channel import ChannelFlow
    from datagen.ns_channel_run import simulate

    from datagen.ns_channel import FORCE_KEYS

    start = time.perf_counter()
    shapes = json.loads(level.geometry) if level.geometry else draw_obstacles(level, seed)
    ny = resolution
    nx = int(round(level.aspect * ny))
    nu = level.u_max * level.height / level.reynolds
    check_step_count(level, ny, nu)
    flow = ChannelFlow(shapes, nx=nx, ny=ny, height=level.height, nu=nu, u_max=level.u_max,
                       pressure_precond=pressure_precond, tol=pressure_tol, device=device, omega=pressure_omega,
                       seed=seed, viscosity=level.viscous_scheme, walls=level.walls, inflow=level.inflow or None,
                       outflow=level.outflow)
    out = simulate(flow, t_end=level.t_end, interval=level.interval, warmup=level.warmup, cfl=level.cfl, name=name,
                   pressure_systems=pressure_systems, progress=progress, steady_tol=level.steady_tol or None,
                   probes=json.loads(level.probes) if level.probes else None, steady_scheme=level.steady_scheme)
    from datagen.burgers import BlowUpError

    bad = [key for key in ("velocity", "pressure", *FORCE_KEYS)
           if key in out and not bool(torch.isfinite(torch.as_tensor(out[key])).all())]
    if bad:  # e.g. u_max so small that U_mean^2 underflows in the force coefficients
        raise BlowUpError(f"sample {name}: non-finite {', '.join(bad)} (u_max {level.u_max:g}, height "
                          f"{level.height:g}, nu {nu:g}); check the flow's scales")
    k_max = level.obstacles[1]
    pad = lambda a: np.pad(a.cpu().numpy().astype(np.float32), ((0, 0), (0, k_max - a.shape[1])),  # noqa: E731
                           constant_values=np.nan)
    sample = {
        "velocity": out["velocity"].cpu().numpy().astype(np.float32),
        "pressure": out["pressure"].cpu().numpy().astype(np.float32),
        "mask": (~flow.solid).astype(np.uint8), "t": out["t"].numpy(), "t_force": out["t_force"].numpy(),
        **{key: pad(out[key]) for key in FORCE_KEYS}, "reynolds": level.reynolds,
        "viscosity": nu, "n_obstacles": len(shapes), "obstacles": json.dumps(shapes),
        **({"probes": out["probes"].cpu().numpy().astype(np.float32), "probe_points": out["probe_points"].numpy()}
           if "probes" in out else {}),
        "steady_step": out["steady_step"], "viscous_iterations": out["viscous_iterations"],
        "pseudo_steps": out["pseudo_steps"],
        "steps": out["steps"], "solver_dt": out["dt"], "pressure_iterations": out["pressure_iterations"],
        **({"pressure_omega": out["pressure_omega"].numpy()} if pressure_precond == "ssor" else {}),
        "pressure_seconds": out["pressure_seconds"], "max_relative_divergence": float(out["relative_divergence"].max()),
        "wall_seconds": time.perf_counter() - start,
    }
    if pressure_systems:
        ps = out["pressure_systems"]
        sample.update({"ps_rhs": ps["rhs"].cpu().numpy(), "ps_solution": ps["solution"].cpu().numpy(),
                       "ps_iterations": ps["iterations"].numpy(),
                       "ps_bc_type": flow.op.bc_type[0], "ps_bc_value": flow.op.bc_value[0]})
    return sample
