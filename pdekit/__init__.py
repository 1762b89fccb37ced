"""pdekit: a neural PDE solver framework.

The numerical core sits at the top of the package (grids, boundary conditions, layouts, operators,
stencils, linear operators, Krylov solvers, preconditioners, relaxation); the layers above it are
subpackages: :mod:`pdekit.files` (HDF5 schemas and readers, atomic writes, figures),
:mod:`pdekit.problems` (analytic problems, domains, reference solves) and :mod:`pdekit.learning`
(training tasks, data modules, checkpoints, the ``pdekit`` command, evaluation, trained solvers in
numerical code).  The core imports none of the layers above it, nor ``models`` or ``datagen``.
"""
from pdekit import _moved
from pdekit.boundary import (ACTIVE, DIRICHLET, NEUMANN, BoundaryCondition, BoundaryConditions,
                             Dirichlet, Neumann)
from pdekit.errors import (GridMismatchError, IncompatibleRHSError, InvalidCoefficientError,
                           NonFiniteError, PdekitError, SingularOperatorError)
from pdekit.grid import Grid
from pdekit.layout import Layout
from pdekit.operators import DiffusionOperator

__version__ = "0.1.0"

_moved.install()  # old module paths (pdekit.learning.tasks, ...) resolve to their new places
