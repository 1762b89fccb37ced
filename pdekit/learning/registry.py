"""The allow-list of classes pdekit builds from names it reads in files.

A checkpoint (and a config's ``network``) names its task and network by class path.  Importing
and calling whatever a file names would let a crafted file run code (``torch.hub.load`` on a
folder of the attacker's, ``logging.basicConfig(filename=..., filemode="w")`` truncating a
file, ...), so pdekit builds only the classes listed here, with constructor arguments of plain
types (None, bool, int, float, str and lists/dicts of them).

A user extends the list deliberately, never through a file pdekit reads:

* in Python: ``pdekit.learning.registry.allow("my_package.MyNet")``;
* for the command line: ``PDEKIT_ALLOW="my_package.MyNet,my_package.MyTask"`` in the environment.

Model families add their task and network classes to :data:`LOADABLE` when they land.
"""
from __future__ import annotations

import importlib
import math
import os

from pdekit.errors import PdekitError

LOADABLE = frozenset({
    # tasks (LightningModules)
    "pdekit.learning.tasks.OperatorLearning",
    "pdekit.learning.tasks.Autoregressive",
    "models.dcdm.DCDM",
    "models.gp_hm.task.GPHM",
    "models.fkpinn.FKPINN",
    "models.npsolver.NPSolver",
    "models.multigrid.NeuralMultigrid",
    "models.learned_amg.LearnedAMG",
    # data modules
    "pdekit.learning.datamodules.FieldDataModule",
    "pdekit.learning.datamodules.ProblemDataModule",
    # networks
    "models.dcdm.DCDMNet",
    "models.unet.UNet",
    "models.lsm.LSM",
    "models.transolver.BATransolver",
    "neuralop.models.FNO",
    "neuralop.models.TFNO",
    "neuralop.models.UNO",
})
ENVIRONMENT_VARIABLE = "PDEKIT_ALLOW"
_added: set[str] = set()


class NotAllowedError(PdekitError, ValueError):
    """A class path outside the allow-list, or constructor arguments that are not plain data."""


def allow(*paths: str) -> None:
    """Add class paths (``module.Class``) to the allow-list of this process."""
    for path in paths:
        if not isinstance(path, str) or ("." not in path and ":" not in path):
            raise ValueError(f"allow() takes class paths like 'package.module.Class' (or module:object), got {path!r}")
        _added.add(path)


def allowed() -> frozenset[str]:
    """Every class path pdekit may build now: its own, ``allow()``-ed and ``$PDEKIT_ALLOW``."""
    extra = {p.strip() for p in os.environ.get(ENVIRONMENT_VARIABLE, "").split(",") if p.strip()}
    return LOADABLE | _added | extra


def resolve_moved(path: str) -> str:
    """A class path written before pdekit was grouped by layer (``pdekit.tasks.OperatorLearning`` in an
    old checkpoint or config) → its current path, with a warning naming it; other paths unchanged."""
    from pdekit._moved import new_path

    moved = new_path(path) if isinstance(path, str) else None
    if moved is None:
        return path
    import warnings

    warnings.warn(f"{path} moved to {moved}: write the new path in configs", FutureWarning, stacklevel=3)
    return moved


MAX_NESTING = 32  # a constructor argument nested deeper than this is not a setting but a tampered file


def check_plain(value, where: str, depth: int = 0) -> None:
    """Refuse anything but plain data (what a config or a weights-only checkpoint should hold)."""
    if depth > MAX_NESTING:
        raise NotAllowedError(f"a value is nested more than {MAX_NESTING} levels deep ({where[:100]}...)")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if math.isnan(value):
            raise NotAllowedError(f"{where} is NaN")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotAllowedError(f"{where} has a non-string key {key!r}")
            check_plain(item, f"{where}.{key}", depth + 1)
        return
    raise NotAllowedError(f"{where} holds a {type(value).__name__}; only plain values (numbers, strings, "
                          "lists, mappings) are accepted as constructor arguments")


def import_object(spec: str, where: str):
    """The object ``module:name`` (``my_package.problems:SQUARE``; ``name`` may be dotted) — how a user
    names code of their own on a command line, in a config or in the environment, deliberately.  A
    file pdekit reads (a checkpoint, a dataset) never gets to name one."""
    if not isinstance(spec, str):
        raise NotAllowedError(f"{where}: expected module:object, got {type(spec).__name__}")
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise NotAllowedError(f"{where}: {spec!r} must look like module:object (e.g. my_package.problems:SQUARE)")
    try:
        value = importlib.import_module(module)
    except ImportError as err:
        raise NotAllowedError(f"{where}: cannot import module {module!r} ({err})") from None
    for part in name.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise NotAllowedError(f"{where}: module {module!r} has no {name!r}") from None
    return value


def load_class(path, base: type, what: str):
    """The allow-listed class ``path``, checked to be a subclass of ``base``.  Nothing is imported
    for a path outside the list."""
    if not isinstance(path, str):
        raise NotAllowedError(f"{what} class path must be a string, got {type(path).__name__}")
    path = resolve_moved(path)
    if path not in allowed():
        raise NotAllowedError(
            f"refusing to build {what} {path!r}: not in pdekit's allow-list of loadable classes "
            f"(to use a class of your own, allow it deliberately: {ENVIRONMENT_VARIABLE}={path} or "
            f"pdekit.learning.registry.allow({path!r}))")
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise NotAllowedError(f"unknown class path {path!r}: cannot import {name!r} from {module!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise NotAllowedError(f"{what} {path!r} is not a {base.__module__}.{base.__qualname__}")
    return cls
