"""``datagen navier-stokes --family periodic|obstacles``: 2-D Navier–Stokes trajectories in a periodic
box (vorticity, :mod:`datagen.ns_periodic`) or a channel past obstacles (:mod:`datagen.ns_channel`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from datagen.kinds import (DatasetKind, UsageError, add_time_series_options, check_device, parse_omega, register,
                           shared, snapshot_count, stack, time_series_options)
from datagen.kinds.poisson import POISSON_KEYS


class _NavierStokes(DatasetKind):
    command = "navier-stokes"
    pde = "navier_stokes"
    help = "2-D Navier-Stokes trajectories (periodic box or channel with obstacles)"
    resolution_help = "grid points per axis (periodic) or cells across the channel (obstacles); default: the level's"
    batched = True

    def level_classes(self):
        from datagen.navier_stokes import FAMILIES

        return FAMILIES[self.family]

    @classmethod
    def add_arguments(cls, parser):  # one command for both families: every option of both
        parser.add_argument("--family", choices=("periodic", "obstacles"), required=True,
                            help="periodic: vorticity in a periodic box; obstacles: channel flow past obstacles")
        add_time_series_options(parser, batch=8)
        parser.add_argument("--pressure-precond", default="amg",
                            help="obstacles: pressure preconditioner amg|jacobi|ilu|ssor|none or a trained pdekit "
                                 "checkpoint")
        parser.add_argument("--omega", default=None,
                            help="obstacles with --pressure-precond ssor: the relaxation in (0, 2), or auto (default): "
                                 "an online bandit learns it from each pressure solve's iterations (recorded per "
                                 "snapshot as `pressure_omega`)")
        parser.add_argument("--pressure-tol", type=float, default=1e-6,
                            help="obstacles: relative residual of each pressure solve (= divergence after the step)")
        parser.add_argument("--pressure-systems", default=None,
                            help="obstacles: also save every snapshot's pressure system as a Poisson-format dataset "
                                 "here")

    def write(self, out, samples, config):
        from pdekit.files.dataset import write_timeseries

        per_sample = [k for k in samples[0] if k not in ("t", "t_force") and not k.startswith("ps_")]
        arrays = {key: stack(samples, key) for key in per_sample}
        arrays["t"] = shared(samples, "t")
        fields, spacing, attrs = self.file_layout(config, arrays, samples)
        return [write_timeseries(out, arrays, pde=config["pde"], fields=fields, spacing=spacing,
                                 dt=config["level_spec"]["interval"], config=config, generator_version=self.version,
                                 attrs=attrs)]


class NavierStokesPeriodic(_NavierStokes):
    name = "navier_stokes_periodic"
    family = "periodic"
    version = "ns-periodic-1"

    def options(self, args, level) -> dict:
        extra = time_series_options(args)
        if args.omega is not None:
            raise UsageError("--omega sets SSOR's relaxation: it needs --family obstacles --pressure-precond ssor")
        return extra

    def generate(self, config, indices, seeds, progress=None, parts=None):
        from datagen.navier_stokes import periodic_samples

        return periodic_samples(self.level(config), config["resolution"], seeds, names=list(indices),
                                device=config.get("device") or "cpu")

    def file_layout(self, config, arrays, samples):
        n = config["resolution"]
        return ["vorticity"], (1.0 / n,) * 2, {
            "family": "periodic", "domain_size": [1.0, 1.0], "origin": [0.0, 0.0], "boundary": "periodic",
            "equation": "w_t + u.grad w = nu lap w - drag w + f, -lap psi = w, u = (psi_y, -psi_x)"}

    def estimate_bytes(self, config, samples):
        n, steps, batch = int(config["resolution"]), snapshot_count(config), self.batch_size(config)
        per_sample = 4 * steps * n * n
        return samples * per_sample, 2 * samples * per_sample + 8 * 32 * n * n * batch + 8 * steps * n * n * batch

    def print_levels(self, args) -> None:
        from datagen.navier_stokes import PERIODIC_LEVELS

        print("\nnavier-stokes --family periodic (vorticity; levels along viscosity and resolution)")
        print(f"{'level':<9} {'nu':>8} {'grid':>6} {'T':>5}  varies")
        for name, lv in PERIODIC_LEVELS.items():
            print(f"{name:<9} {lv.viscosity:>8.0e} {lv.resolution:>6} {lv.t_end:>5g}  {lv.description}")


class NavierStokesObstacles(_NavierStokes):
    name = "navier_stokes_obstacles"
    family = "obstacles"
    version = "ns-channel-3"

    def batch_size(self, config) -> int:
        return 1  # the channel integrates one trajectory at a time

    def options(self, args, level) -> dict:
        check_device(args.device)
        if not 0 < args.pressure_tol < 1:
            raise UsageError(f"--pressure-tol must be in (0, 1), got {args.pressure_tol}")
        extra = {"device": args.device, "pressure_precond": _pressure_precond(args.pressure_precond),
                 "pressure_tol": args.pressure_tol}
        if extra["pressure_precond"] == "ssor":
            extra["pressure_omega"] = parse_omega(args.omega)
        elif args.omega is not None:
            raise UsageError("--omega sets SSOR's relaxation: it needs --pressure-precond ssor")
        if args.pressure_systems:
            if getattr(level, "walls", "staircase") != "staircase":
                from datagen.ns_channel_run import WHY_STAIRCASE_PRESSURE_SYSTEMS

                raise UsageError(f"--pressure-systems needs staircase walls: {WHY_STAIRCASE_PRESSURE_SYSTEMS}")
            from datagen.checks import check_out

            check_out(Path(args.pressure_systems), args.overwrite)
            extra["pressure_systems"] = str(Path(args.pressure_systems))
        return extra

    def outputs(self, config) -> list[str]:
        return [config["pressure_systems"]] if config.get("pressure_systems") else []

    def generate(self, config, indices, seeds, progress=None, parts=None):
        from datagen.navier_stokes import obstacle_sample

        level = self.level(config)
        return [obstacle_sample(level, config["resolution"], seed, k, pressure_precond=config["pressure_precond"],
                                pressure_tol=config["pressure_tol"], pressure_omega=config.get("pressure_omega"),
                                pressure_systems=bool(config.get("pressure_systems")),
                                device=config.get("device") or "cpu", progress=progress)
                for k, seed in zip(indices, seeds)]

    def file_layout(self, config, arrays, samples):
        # n cells across, every attribute from the run's own level (a spec's units)
        arrays["t_force"] = shared(samples, "t_force")
        return ["velocity", "pressure"], *channel_attributes(config, arrays["mask"].shape[1:])

    def write(self, out, samples, config):
        written = super().write(out, samples, config)
        if config.get("pressure_systems"):
            written.append(_write_pressure_systems(Path(config["pressure_systems"]), samples, config, self.version))
        return written

    def estimate_bytes(self, config, samples):
        n, steps = int(config["resolution"]), snapshot_count(config)
        cells = int(round(config["level_spec"]["aspect"] * n)) * n
        per_sample = 4 * 3 * steps * cells + cells  # velocity (2) and pressure float32, mask
        if config.get("pressure_systems"):
            per_sample += 2 * 8 * steps * cells
        return samples * per_sample, 2 * samples * per_sample + 400 * cells

    def print_levels(self, args) -> None:
        from datagen.navier_stokes import OBSTACLE_LEVELS

        print("\nnavier-stokes --family obstacles (channel flow; level = <geometry>-<physics>, "
              "easy/medium/hard = both axes together)")
        print(f"{'level':<14} {'Re':>6} {'obstacles':>9} {'grid':>7}  varies")
        for name, lv in OBSTACLE_LEVELS.items():
            if "-" in name:
                grid = f"{int(lv.aspect * lv.resolution)}x{lv.resolution}"
                print(f"{name:<14} {lv.reynolds:>6g} {lv.obstacles[0]:>4}-{lv.obstacles[1]:<4} {grid:>7}  "
                      f"{lv.description}")
        sys.stdout.flush()


def _pressure_precond(value: str) -> str:
    from datagen.ns_channel import PRECONDITIONERS

    if value in PRECONDITIONERS:
        return value
    if not Path(value).is_file():
        raise UsageError(f"--pressure-precond must be one of {', '.join(PRECONDITIONERS)} or a checkpoint file, "
                         f"got {value!r}")
    from pdekit.errors import PdekitError
    from pdekit.learning.checkpoints import load_task

    try:  # refused here, before any work, if it is not a loadable pdekit checkpoint
        task, _ = load_task(value)
    except PdekitError as err:
        raise UsageError(f"--pressure-precond: {err}") from None
    if not hasattr(task, "preconditioner_module"):
        raise UsageError(f"--pressure-precond: {value} holds a model that cannot act as a preconditioner")
    if not getattr(task, "trained_on_residuals", False):
        # a solution predictor (NPSolver, FNO, LSM, U-Net) meets rough Krylov residuals it never saw:
        # every pressure solve then runs to its iteration limit (measured: minutes on an 8-cell channel)
        raise UsageError(f"--pressure-precond: {value} holds a {type(task).__name__} trained to predict solutions, "
                         "which stalls as a preconditioner; use a DCDM or neural multigrid checkpoint")
    return str(Path(value).resolve())


OUTFLOW_TEXT = {"convective": "convective outflow du/dt + |f(t)| U_mean du/dx = 0, p = 0 half a cell beyond",
                "do-nothing": "do-nothing outflow -p n + nu du/dn = 0 half a cell beyond the outlet faces"}


def channel_attributes(config: dict, cells: tuple[int, int]) -> tuple[tuple[float, float], dict]:
    """Spacing and root attributes of a channel file, from the level the run used: cells of side
    ``height / ny`` (a spec's physical units), the spec's ``u_max``, its wall treatment."""
    spec = config["level_spec"]
    height, u_max = float(spec.get("height", 1.0)), float(spec.get("u_max", 1.0))
    nx, ny = int(cells[0]), int(cells[1])
    h = height / ny
    walls = spec.get("walls", "staircase")
    return (h, h), {
        "family": "obstacles", "domain_size": [nx * h, ny * h], "origin": [0.5 * h, 0.5 * h],
        "u_max": u_max, "u_mean": 2.0 * u_max / 3.0,
        "inflow_waveform": spec.get("inflow") or '{"waveform": "constant"}',
        "boundary": json.dumps({"x-": "parabolic inflow (exact flux) x f(t)", "x+": OUTFLOW_TEXT[spec.get("outflow", "convective")], "y-": "no-slip",
                                "y+": "no-slip", "obstacles": f"no-slip ({walls})"}),
        "velocity_location": "cell centres (averaged from the staggered faces)"}


def _write_pressure_systems(path: Path, samples, config, version) -> Path:
    """The pressure Poisson systems of every snapshot as a Poisson-format dataset (a = 1,
    f = right-hand side, u = pressure, the pressure operator's boundary arrays)."""
    import torch

    from datagen.poisson import normwise_backward_error
    from pdekit import DiffusionOperator, Grid
    from pdekit.files.dataset import write_poisson

    h = channel_attributes(config, samples[0]["mask"].shape)[0][0]
    rows = {key: [] for key in POISSON_KEYS}
    for s in samples:
        count = len(s["ps_rhs"])
        grid = Grid(s["mask"].shape, spacing=h, origin=0.5 * h)
        op = DiffusionOperator.from_arrays(grid, None, s["ps_bc_type"], s["ps_bc_value"])
        A, layout = op.to_sparse(), op.layout()
        for j in range(count):
            u, b = torch.as_tensor(s["ps_solution"][j]), torch.as_tensor(s["ps_rhs"][j])
            residual = float(op.relative_residual(u, b))
            values = {"a": np.ones(s["mask"].shape), "f": s["ps_rhs"][j], "u": s["ps_solution"][j],
                      "mask": s["mask"].astype(bool), "bc_type": s["ps_bc_type"], "bc_value": s["ps_bc_value"],
                      "level": s["level"], "seed": s["seed"], "solver_iterations": s["ps_iterations"][j],
                      "solver_residual": residual,
                      "solver_backward_error": normwise_backward_error(A, layout.to_vectors(u).numpy(),
                                                                       layout.to_vectors(b).numpy(), residual),
                      "solve_seconds": s["pressure_seconds"] / max(s["steps"], 1),
                      "sample_index": s["sample_index"] * count + j}
            for key in POISSON_KEYS:
                rows[key].append(values[key])
    arrays = {key: np.stack([np.asarray(v) for v in values]) for key, values in rows.items()}
    grid = Grid(arrays["u"].shape[1:], spacing=h, origin=0.5 * h)
    pconfig = dict(config, kind="pressure_systems", source="navier_stokes obstacles (one system per snapshot)")
    return write_poisson(path, arrays, grid=grid, config=pconfig, generator_version=version)


register(NavierStokesPeriodic)
register(NavierStokesObstacles)
