"""What the runner runs, for any registered dataset kind (:mod:`datagen.kinds`): the run
configuration, a batch of samples (pure functions of the configuration and the sample indices), the
finished file, an up-front size estimate.

``config`` always holds ``generator`` (the kind's name); kinds with levels also ``level``,
``level_spec`` (every axis of the level), ``n``, ``resolution`` and ``seed``; sample ``k`` uses seed
``seed + k``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from datagen import kinds


class GenerationError(RuntimeError):
    """A sample could not be computed (a solve that does not converge, an overflow): names the samples."""


def versions() -> dict[str, str]:
    """The generator version of every kind (stored in each file it writes)."""
    return {name: kind.version for name, kind in kinds.kinds().items()}


def resolve_level(generator: str, level=None, spec=None):
    """The level of a generator: a name, a level instance, or a YAML file (``spec``)."""
    from datagen import levelspec

    cls, levels = level_classes(generator)
    if spec is not None:
        return levelspec.load(cls, levels, spec)
    return levelspec.resolve(levels, level)


def level_classes(generator: str):
    """``(level class, {name: level})`` of a kind."""
    return kinds.get(generator).level_classes()


def config_for(generator: str, level, n: int, resolution: int | None = None, seed: int = 0, **extra) -> dict:
    """A run configuration; ``resolution`` defaults to the level's own (time-series levels)."""
    from dataclasses import asdict

    kind = kinds.get(generator)
    level = resolve_level(generator, level)
    resolution = resolution if resolution is not None else level.resolution
    return {"generator": generator, "pde": kind.pde, "level": level.name, "level_spec": asdict(level), "n": n,
            "resolution": resolution, "seed": seed, **extra}


def describe(config: dict) -> str:
    """What a run makes, for its progress bar."""
    return kinds.get(config["generator"]).describe(config)


def generate(config: dict, indices, progress=None, parts: Path | None = None) -> list[dict]:
    """Samples ``indices`` of ``config`` as dicts of numpy arrays/scalars (``sample_index``,
    ``seed`` and ``level`` included).  ``parts``: the run's finished samples, where a learning
    solver (``omega: auto``) finds its state after the previous sample."""
    seeds = [config["seed"] + k for k in indices]
    kind = kinds.get(config["generator"])
    try:
        samples = kind.generate(config, indices, seeds, progress, parts)
    except (RuntimeError, ArithmeticError, ValueError, np.linalg.LinAlgError) as err:
        which = f"sample {indices[0]} (seed {seeds[0]})" if len(indices) == 1 else \
            f"samples {indices[0]}..{indices[-1]} (seeds {seeds[0]}..{seeds[-1]})"
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise GenerationError(f"{config['level']} {which} failed: {text}") from None
    for k, seed, sample in zip(indices, seeds, samples):
        sample.update(sample_index=k, seed=seed, level=config["level"])
    return samples


def estimate_bytes(config: dict, samples: int) -> tuple[int, int]:
    """(bytes of ``samples`` finished samples, peak memory of the run) estimated before any work:
    writing the file holds every sample twice (the parts read back and the stacked arrays), plus
    one job's working set."""
    return kinds.get(config["generator"]).estimate_bytes(config, samples)


def batch_size(config: dict) -> int:
    """Samples per job: the batched torch solvers take several trajectories at once."""
    return kinds.get(config["generator"]).batch_size(config)


def write(out: Path, samples: list[dict], config: dict) -> list[Path]:
    """Write the samples (ordered by index) of one run; returns the files written."""
    return kinds.get(config["generator"]).write(out, samples, config)
