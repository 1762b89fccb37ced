"""What the runner runs: for each kind of dataset, how to generate a batch of samples (pure
functions of the configuration and the sample indices) and how to write the finished samples
as one HDF5 file.

``config`` always holds ``generator``, ``level``, ``level_spec`` (every axis of the level), ``n``,
``resolution`` and ``seed``; sample ``k`` uses seed ``seed + k``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pdekit.files.dataset import write_poisson, write_timeseries

VERSIONS = {"poisson": "poisson-3", "navier_stokes_periodic": "ns-periodic-1", "navier_stokes_obstacles": "ns-channel-2",
            "burgers": "burgers-2", "feynman_kac": "feynman-kac-1"}
POISSON_KEYS = ("a", "f", "u", "mask", "bc_type", "bc_value", "level", "seed", "solver_iterations",
                "solver_residual", "solver_backward_error", "solve_seconds", "sample_index")


class GenerationError(RuntimeError):
    """A sample could not be computed (a solve that does not converge, an overflow): names the samples."""


def resolve_level(generator: str, level=None, spec=None):
    """The level of a generator: a name, a level instance, or a YAML file (``spec``)."""
    from datagen import levelspec

    cls, levels = level_classes(generator)
    if spec is not None:
        return levelspec.load(cls, levels, spec)
    return levelspec.resolve(levels, level)


def level_classes(generator: str):
    if generator == "poisson":
        from datagen.poisson import LEVELS, Level

        return Level, LEVELS
    if generator == "burgers":
        from datagen.burgers import LEVELS, BurgersLevel

        return BurgersLevel, LEVELS
    from datagen.navier_stokes import FAMILIES

    return FAMILIES[generator.rsplit("_", 1)[1]]


def config_for(generator: str, level, n: int, resolution: int | None = None, seed: int = 0, **extra) -> dict:
    """A run configuration; ``resolution`` defaults to the level's own (time-series levels)."""
    from dataclasses import asdict

    level = resolve_level(generator, level)
    resolution = resolution if resolution is not None else level.resolution
    pde = "poisson" if generator == "poisson" else ("burgers" if generator == "burgers" else "navier_stokes")
    return {"generator": generator, "pde": pde, "level": level.name, "level_spec": asdict(level), "n": n,
            "resolution": resolution, "seed": seed, **extra}


def describe(config: dict) -> str:
    """What a run makes, for its progress bar: level and grid (labels: sampler and paths)."""
    if config["generator"] == "feynman_kac":
        return f"{config['level']} {config['sampler']}, {config['paths']} paths"
    shape = f"{config['resolution']}^{config['dim']}" if "dim" in config else str(config["resolution"])
    return f"{config['level']} {shape}"


def _level(config):
    from datagen import levelspec

    cls, levels = level_classes(config["generator"])
    return levelspec.from_dict(cls, levels, config["level_spec"])


def _device(config):
    return config.get("device") or "cpu"


# ------------------------------------------------------------------------------- generate
def generate(config: dict, indices, progress=None, parts: Path | None = None) -> list[dict]:
    """Samples ``indices`` of ``config`` as dicts of numpy arrays/scalars (``sample_index``,
    ``seed`` and ``level`` included).  ``parts``: the run's finished samples, where a learning
    solver (``omega: auto``) finds its state after the previous sample."""
    seeds = [config["seed"] + k for k in indices]
    try:
        samples = _generate(config, indices, seeds, progress, parts)
    except (RuntimeError, ArithmeticError, ValueError, np.linalg.LinAlgError) as err:
        which = f"sample {indices[0]} (seed {seeds[0]})" if len(indices) == 1 else \
            f"samples {indices[0]}..{indices[-1]} (seeds {seeds[0]}..{seeds[-1]})"
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise GenerationError(f"{config['level']} {which} failed: {text}") from None
    for k, seed, sample in zip(indices, seeds, samples):
        sample.update(sample_index=k, seed=seed, level=config["level"])
    return samples


def _generate(config, indices, seeds, progress, parts=None):
    kind = config["generator"]
    if kind == "poisson":
        from datagen.poisson import solve_sample

        samples = []
        for k, seed in zip(indices, seeds):
            solver = config.get("solver", "auto")
            chooser = _chooser_before(config, k, parts) if config.get("omega") == "auto" else None
            omega = chooser.choose() if chooser else config.get("omega")
            out = solve_sample(_level(config), config["resolution"], config["dim"], seed, solver=solver, omega=omega)
            if chooser:
                chooser.update(omega, out["solver_iterations"])
                out["omega_chooser"] = json.dumps(chooser.state_dict())
            grid = out.pop("grid")
            out.update(spacing=np.asarray(grid.spacing), origin=np.asarray(grid.origin))
            samples.append(out)
    elif kind == "navier_stokes_periodic":
        from datagen.navier_stokes import periodic_samples

        samples = periodic_samples(_level(config), config["resolution"], seeds,
                                   names=list(indices), device=_device(config))
    elif kind == "navier_stokes_obstacles":
        from datagen.navier_stokes import obstacle_sample

        level = _level(config)
        samples = [obstacle_sample(level, config["resolution"], seed, k, pressure_precond=config["pressure_precond"],
                                   pressure_tol=config["pressure_tol"], pressure_omega=config.get("pressure_omega"),
                                   pressure_systems=bool(config.get("pressure_systems")), device=_device(config),
                                   progress=progress)
                   for k, seed in zip(indices, seeds)]
    elif kind == "burgers":
        from datagen.burgers import burgers_samples

        samples = burgers_samples(_level(config), config["resolution"], seeds, names=list(indices),
                                  device=_device(config))
    elif kind == "feynman_kac":
        from datagen.feynman_kac import label_samples

        samples = label_samples(config, indices, seeds, device=_device(config))
    else:
        raise KeyError(f"unknown generator {kind!r}")
    return samples


def estimate_bytes(config: dict, samples: int) -> tuple[int, int]:
    """(bytes of ``samples`` finished samples, peak memory of the run) estimated before any work:
    writing the file holds every sample twice (the parts read back and the stacked arrays), plus
    one job's working set (operator, AMG hierarchy, Krylov vectors or FFT buffers, in float64)."""
    if config["generator"] == "feynman_kac":  # a point, a value and a few scalars per sample; paths × points walkers
        walkers = int(config["paths"]) * batch_size(config)
        return samples * 8 * (int(config["dim"]) + 6), 2 * samples * 8 * (int(config["dim"]) + 6) + 64 * walkers * (
            int(config["dim"]) + 8)
    kind, n, spec = config["generator"], int(config["resolution"]), config["level_spec"]
    if kind == "poisson":
        dim = int(config["dim"])
        cells = n**dim
        per_sample = 25 * cells + 9 * (n + 2) ** dim  # a, f, u float64, mask; padded bc_type, bc_value
        working = 400 * cells
    else:
        steps = int(round(spec["t_end"] / spec["interval"])) + 1
        if kind == "navier_stokes_obstacles":
            cells = int(round(spec["aspect"] * n)) * n
            per_sample = 4 * 3 * steps * cells + cells  # velocity (2) and pressure float32, mask
            if config.get("pressure_systems"):
                per_sample += 2 * 8 * steps * cells
            working = 400 * cells
        else:
            cells = n * n if kind == "navier_stokes_periodic" else n
            per_sample = 4 * steps * cells
            working = 8 * 32 * cells * batch_size(config) + 8 * steps * cells * batch_size(config)
    return samples * per_sample, 2 * samples * per_sample + working


def _chooser_before(config, k: int, parts):
    """The ω chooser as it was after this run's previous sample (stored in that sample's part, so
    a resumed run learns exactly as an uninterrupted one): a fresh one for the first sample."""
    from pdekit.relaxation import TsallisINF, from_state_dict

    count = int(config.get("shard", "0/1").split("/")[1])
    previous = k - count  # samples run in index order; a shard takes every count-th
    if previous < 0:
        return TsallisINF(seed=config["seed"])
    if parts is None:
        raise RuntimeError("omega auto learns across the run: generate it through datagen.runner")
    with np.load(Path(parts) / f"sample_{previous:08d}.npz") as data:
        return from_state_dict(json.loads(str(data["omega_chooser"])))


def batch_size(config: dict) -> int:
    """Samples per job: the batched torch solvers take several trajectories at once."""
    return int(config.get("batch", 1)) if config["generator"] in ("navier_stokes_periodic", "burgers", "feynman_kac") \
        else 1


# ---------------------------------------------------------------------------------- write
def _stack(samples, key):
    return np.stack([np.asarray(s[key]) for s in samples])


def _shared(samples, key):
    first = np.asarray(samples[0][key])
    if any(not np.array_equal(np.asarray(s[key]), first) for s in samples):
        raise RuntimeError(f"samples of one file must share {key}")
    return first


def write(out: Path, samples: list[dict], config: dict) -> list[Path]:
    """Write the samples (ordered by index) of one run; returns the files written."""
    kind = config["generator"]
    version = VERSIONS[kind]
    if kind == "poisson":
        from pdekit import Grid

        arrays = {key: _stack(samples, key) for key in POISSON_KEYS + (("omega",) if "omega" in samples[0] else ())}
        grid = Grid(arrays["u"].shape[1:], spacing=tuple(_shared(samples, "spacing")),
                    origin=tuple(_shared(samples, "origin")))
        return [write_poisson(out, arrays, grid=grid, config=config, generator_version=version)]
    if kind == "feynman_kac":
        from pdekit.files.dataset import write_labels

        arrays = {key: _stack(samples, key) for key in samples[0]}
        return [write_labels(out, arrays, config=config, generator_version=version)]
    per_sample = [k for k in samples[0] if k not in ("t", "t_force") and not k.startswith("ps_")]
    arrays = {key: _stack(samples, key) for key in per_sample}
    arrays["t"] = _shared(samples, "t")
    n = config["resolution"]
    if kind == "navier_stokes_periodic":
        fields, spacing = ["vorticity"], (1.0 / n,) * 2
        attrs = {"family": "periodic", "domain_size": [1.0, 1.0], "origin": [0.0, 0.0], "boundary": "periodic",
                 "equation": "w_t + u.grad w = nu lap w - drag w + f, -lap psi = w, u = (psi_y, -psi_x)"}
    elif kind == "burgers":
        fields, spacing = ["u"], (2 * np.pi / n,)
        attrs = {"domain_size": [2 * np.pi], "origin": [0.0], "boundary": "periodic", "equation": "u_t + u u_x = nu u_xx"}
    else:  # the channel: n cells across, every attribute from the run's own level (a spec's units)
        arrays["t_force"] = _shared(samples, "t_force")
        fields, spacing, attrs = ["velocity", "pressure"], *channel_attributes(config, arrays["mask"].shape[1:])
    written = [write_timeseries(out, arrays, pde=config["pde"], fields=fields, spacing=spacing,
                                dt=config["level_spec"]["interval"], config=config, generator_version=version,
                                attrs=attrs)]
    if config.get("pressure_systems"):
        written.append(_write_pressure_systems(Path(config["pressure_systems"]), samples, config, version))
    return written


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
        "boundary": json.dumps({"x-": "parabolic inflow", "x+": "convective outflow, p = 0", "y-": "no-slip",
                                "y+": "no-slip", "obstacles": f"no-slip ({walls})"}),
        "velocity_location": "cell centres (averaged from the staggered faces)"}


def _write_pressure_systems(path: Path, samples, config, version) -> Path:
    """The pressure Poisson systems of every snapshot as a Poisson-format dataset (a = 1,
    f = right-hand side, u = pressure, the pressure operator's boundary arrays)."""
    import torch

    from datagen.poisson import normwise_backward_error
    from pdekit import DiffusionOperator, Grid

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
