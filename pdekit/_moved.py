"""Modules that moved when pdekit was grouped by layer: the old import paths keep working.

``import pdekit.tasks`` (a user's script, a config's ``class_path: pdekit.tasks.OperatorLearning``,
a checkpoint's recorded task) gets the module at its new place, with a DeprecationWarning naming
it; :func:`pdekit.learning.registry.load_class` resolves moved class paths through the same table.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "pdekit.atomic": "pdekit.files.atomic",
    "pdekit.data": "pdekit.files.dataset",
    "pdekit.autodiff": "pdekit.problems.autodiff",
    "pdekit.domains": "pdekit.problems.domains",
    "pdekit.reference_fd": "pdekit.problems.reference",
    "pdekit.checkpoints": "pdekit.learning.checkpoints",
    "pdekit.registry": "pdekit.learning.registry",
    "pdekit.cli": "pdekit.learning.cli",
    "pdekit.fit": "pdekit.learning.fit",
    "pdekit.datamodule": "pdekit.learning.datamodules",
    "pdekit.problem_data": "pdekit.learning.datamodules",
    "pdekit.tasks": "pdekit.learning.tasks",
    "pdekit.predict": "pdekit.learning.predict",
    "pdekit.quiet": "pdekit.learning.quiet",
    "pdekit.warmstart": "pdekit.learning.solvers",
    "pdekit.evaluate": "pdekit.learning.evaluation.fields",
    "pdekit.problem_eval": "pdekit.learning.evaluation.problems",
    "pdekit.rollout_eval": "pdekit.learning.evaluation.rollout",
    "pdekit.rollout_metrics": "pdekit.learning.evaluation.rollout_metrics",
    "pdekit.metrics": "pdekit.learning.evaluation.metrics",
    "pdekit.tuning": "pdekit.relaxation",
}


def new_path(path: str) -> str | None:
    """The current dotted path of a moved module or class path, or None if ``path`` did not move."""
    module, _, name = path.rpartition(".")
    if path in MOVED:
        return MOVED[path]
    if module in MOVED:
        return f"{MOVED[module]}.{name}"
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.target}", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec  # the import system stamped the old name's spec on the module


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, _Alias(MOVED[fullname]))
        return None


def install() -> None:
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
