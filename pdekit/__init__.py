"""pdekit: a neural PDE solver framework.

The numerical core sits at the top of the package (grids, boundary conditions, layouts, operators,
stencils, linear operators, Krylov solvers, preconditioners, relaxation); the layers above it are
subpackages: :mod:`pdekit.files` (HDF5 schemas and readers, atomic writes, figures),
:mod:`pdekit.problems` (analytic problems, domains, reference solves) and :mod:`pdekit.learning`
(training tasks, data modules, checkpoints, the ``pdekit`` command, evaluation, trained solvers in
numerical code).  The core imports none of the layers above it, nor ``models`` or ``datagen``.
"""
from pdekit import _moved

# the public names, imported on first use: `pdekit --help` and `datagen --help` must not wait for torch
_PUBLIC = {
    "pdekit.boundary": ("ACTIVE", "DIRICHLET", "NEUMANN", "BoundaryCondition", "BoundaryConditions", "Dirichlet",
                        "Neumann"),
    "pdekit.errors": ("GridMismatchError", "IncompatibleRHSError", "InvalidCoefficientError", "NonFiniteError",
                      "PdekitError", "SingularOperatorError"),
    "pdekit.grid": ("Grid",),
    "pdekit.layout": ("Layout",),
    "pdekit.operators": ("DiffusionOperator",),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pdekit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__version__ = "0.5.0"

_moved.install()  # old module paths (pdekit.learning.tasks, ...) resolve to their new places
