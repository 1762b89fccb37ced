"""Dataset kinds: each kind of dataset is one module here, registered with the ``datagen`` command.

A kind declares everything the command and the runner need (:class:`DatasetKind`): its levels, its
command-line options and their checks, its run configuration, how to generate a batch of samples
(a pure function of the configuration and the sample indices), how to write the finished samples,
an up-front size estimate and the generator version stored in its files.  ``datagen``'s parser is
built from the registry; :mod:`datagen.generators` dispatches to it; :mod:`datagen.runner` runs any
kind (workers, shards, resume, atomic output).

Adding a kind is one module: a :class:`DatasetKind` subclass passed to :func:`register`.  pdekit's
own kinds are listed in :data:`BUILTIN`; a kind of your own is named deliberately in the
environment, ``DATAGEN_KINDS="my_package.my_module:MyKind"`` (comma-separated; the module is
imported and the class registered in the command and in every worker process), never by a file.
"""
from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

import numpy as np

BUILTIN = ("datagen.kinds.poisson", "datagen.kinds.navier_stokes", "datagen.kinds.burgers",
           "datagen.kinds.feynman_kac")
ENVIRONMENT_VARIABLE = "DATAGEN_KINDS"


class UsageError(Exception):
    """Bad arguments: reported as one line, exit status 2."""


class DatasetKind:
    """One kind of dataset.  Class attributes:

    * ``name`` — the run configuration's ``generator`` (stored in every file; never renamed);
    * ``command`` — the ``datagen`` subcommand; kinds sharing one tell themselves apart by ``family``
      (``datagen navier-stokes --family periodic``);
    * ``pde`` — the file's ``pde`` attribute; ``version`` — the generator version stored in each file
      (change it whenever the data a seed produces changes);
    * ``help`` — one line for ``datagen --help``; ``noun`` — what a sample is called in messages;
    * ``batched`` — jobs take several samples at once (``--batch``).
    """

    name: str = ""
    command: str = ""
    family: str | None = None
    pde: str = ""
    version: str = ""
    help: str = ""
    noun = "samples"
    batched = False
    has_levels = True
    resolution_help = "nodes per axis (required)"

    # -- levels ------------------------------------------------------------------------------
    def level_classes(self):
        """``(level class, {name: level})``."""
        raise NotImplementedError(f"{self.name} has no levels")

    def print_levels(self, args) -> None:
        """This kind's part of ``datagen levels``."""

    # -- the command line --------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The command's own options (besides the common ones of :mod:`datagen.cli`)."""

    def options(self, args, level) -> dict:
        """The kind's options checked (:class:`UsageError` naming the bad one) as configuration
        entries."""
        return {}

    def config(self, args, level, resolution: int | None, extra: dict) -> dict:
        """The run configuration of a command line."""
        from datagen.generators import config_for

        return config_for(self.name, level, args.n, resolution, args.seed, **extra)

    def resource_hint(self, args, config) -> str:
        """The options that set a run's size, for a too-large-run message."""
        return f"--n {args.n} at --resolution {config['resolution']}"

    def outputs(self, config) -> list[str]:
        """Files a run writes besides ``--out``."""
        return []

    def after_write(self, out: Path) -> None:
        """Warnings about the written data (quality flags the generator recorded)."""

    # -- generating and writing ------------------------------------------------------------------
    def describe(self, config: dict) -> str:
        """What a run makes, for its progress bar."""
        shape = f"{config['resolution']}^{config['dim']}" if "dim" in config else str(config["resolution"])
        return f"{config['level']} {shape}"

    def batch_size(self, config: dict) -> int:
        """Samples per job."""
        return int(config.get("batch", 1)) if self.batched else 1

    def generate(self, config: dict, indices, seeds, progress=None, parts: Path | None = None) -> list[dict]:
        """Samples ``indices`` (seeds ``seeds``) as dicts of numpy arrays and scalars."""
        raise NotImplementedError

    def write(self, out: Path, samples: list[dict], config: dict) -> list[Path]:
        """Write a run's samples (ordered by index); returns the files written."""
        raise NotImplementedError

    def estimate_bytes(self, config: dict, samples: int) -> tuple[int, int]:
        """(bytes of ``samples`` finished samples, peak memory of the run), before any work."""
        raise NotImplementedError

    def level(self, config: dict):
        """The level object a configuration was made with."""
        from datagen import levelspec

        cls, levels = self.level_classes()
        return levelspec.from_dict(cls, levels, config["level_spec"])


_KINDS: dict[str, DatasetKind] = {}
_loaded = False


def register(kind: type[DatasetKind] | DatasetKind) -> DatasetKind:
    """Add a kind to the registry (a class or an instance); returns the instance."""
    instance = kind() if isinstance(kind, type) else kind
    if not isinstance(instance, DatasetKind) or not instance.name or not instance.command or not instance.version:
        raise ValueError(f"{kind!r} is not a DatasetKind with a name, a command and a version")
    _KINDS[instance.name] = instance
    return instance


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN:
        importlib.import_module(module)
    for entry in (e.strip() for e in os.environ.get(ENVIRONMENT_VARIABLE, "").split(",") if e.strip()):
        from pdekit.learning.registry import import_object

        try:
            register(import_object(entry, f"${ENVIRONMENT_VARIABLE}"))
        except ValueError as err:
            raise UsageError(str(err)) from None


def kinds() -> dict[str, DatasetKind]:
    """Every registered kind by name."""
    _load()
    return dict(_KINDS)


def get(name: str) -> DatasetKind:
    """The kind whose configurations say ``generator: name``."""
    _load()
    if name not in _KINDS:
        raise KeyError(f"unknown generator {name!r} (known: {', '.join(_KINDS)})")
    return _KINDS[name]


def commands() -> dict[str, list[DatasetKind]]:
    """The ``datagen`` subcommands and the kinds behind each."""
    grouped: dict[str, list[DatasetKind]] = {}
    for kind in kinds().values():
        grouped.setdefault(kind.command, []).append(kind)
    return grouped


# -- what several kinds share ------------------------------------------------------------------
def check_device(device: str) -> None:
    from pdekit.resources import check_device as check

    try:
        check(device)
    except ValueError as err:
        raise UsageError(str(err)) from None


def parse_omega(text):
    """``--omega``: ``auto`` (the default) or a relaxation in (0, 2)."""
    if text is None or text == "auto":
        return "auto"
    from pdekit.errors import ConfigError
    from pdekit.precond import check_omega

    try:
        return check_omega(float(text))
    except (ValueError, ConfigError):
        raise UsageError(f"--omega must be auto or a number in (0, 2), got {text!r}") from None


def add_time_series_options(parser, batch: int) -> None:
    parser.add_argument("--device", default="cpu", help="torch device of the solver (cpu, cuda, cuda:1)")
    parser.add_argument("--batch", type=int, default=batch,
                        help=f"trajectories integrated together (batched FFTs; the channel takes one at a time; "
                             f"default {batch})")


def time_series_options(args) -> dict:
    """``--device`` and ``--batch`` of a batched time-series kind, checked, as configuration entries."""
    check_device(args.device)
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    return {"device": args.device, "batch": args.batch}


def snapshot_count(config: dict) -> int:
    """Stored snapshots of a time-series level: ``t_end / interval + 1``."""
    spec = config["level_spec"]
    return int(round(spec["t_end"] / spec["interval"])) + 1


def stack(samples, key):
    """One array of every sample's ``key``."""
    return np.stack([np.asarray(s[key]) for s in samples])


def shared(samples, key):
    """The value of ``key`` every sample must share."""
    first = np.asarray(samples[0][key])
    if any(not np.array_equal(np.asarray(s[key]), first) for s in samples):
        raise RuntimeError(f"samples of one file must share {key}")
    return first
