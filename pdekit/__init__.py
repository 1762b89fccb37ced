"""pdekit: the numerical core of the neural PDE solver framework."""
from pdekit.boundary import (ACTIVE, DIRICHLET, NEUMANN, BoundaryCondition, BoundaryConditions,
                             Dirichlet, Neumann)
from pdekit.errors import (GridMismatchError, IncompatibleRHSError, InvalidCoefficientError,
                           NonFiniteError, PdekitError, SingularOperatorError)
from pdekit.grid import Grid
from pdekit.layout import Layout
from pdekit.operators import DiffusionOperator

__version__ = "0.1.0"
