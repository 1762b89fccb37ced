"""Exceptions with messages that name the problem."""


class PdekitError(Exception):
    """Base class of pdekit's own errors."""


class GridMismatchError(PdekitError, ValueError):
    """An array's shape does not fit the grid (or a tensor's shape the operator)."""


class InvalidCoefficientError(PdekitError, ValueError):
    """A coefficient that is not positive and finite on the active cells."""


class SingularOperatorError(PdekitError, ValueError):
    """A connected region of unknowns touches no Dirichlet boundary, so the system is singular."""


class IncompatibleRHSError(PdekitError, ValueError):
    """A pure-Neumann region whose right-hand side does not integrate to zero (no solution exists)."""


class NonFiniteError(PdekitError, ValueError):
    """NaN or Inf in input data."""
