"""Exceptions with messages that name the problem."""


class PdekitError(Exception):
    """Base class of pdekit's own errors."""


class DatasetFormatError(ValueError):
    """A file that is not a valid pdekit dataset (foreign, truncated, wrong version)."""


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


class ConfigError(PdekitError, ValueError):
    """A configuration value that cannot work (unknown class path, bad hyperparameter, bad split)."""


def yaml_problem(err) -> str:
    """PyYAML's problem and where it is (line, column), in one line."""
    mark = getattr(err, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return f"{getattr(err, 'problem', None) or str(err).splitlines()[0]}{where}"


def os_error_message(err: OSError) -> str:
    """``path: reason`` for a failed file operation, on one line (no errno numbers, no traceback;
    HDF5's multi-line reports reduced to the file and the system's reason)."""
    import re

    reason = err.strerror or str(err)
    names = [n for n in (err.filename, getattr(err, "filename2", None)) if n]
    if not names and "error message = '" in reason:  # HDF5: "... filename = 'F', ... error message = 'R', ..."
        found = re.search(r"filename = '([^']*)'", reason)
        names = [found.group(1)] if found else []
        reason = re.search(r"error message = '([^']*)'", reason).group(1)
    reason = " ".join(str(reason).split())
    return f"{' -> '.join(map(str, names))}: {reason}" if names else reason


def quiet_hdf5_destructors() -> None:
    """h5py reports a failed close inside an object's destructor (a full disk) as "Exception ignored
    in ..." with a traceback, before the command's own one-line error: drop those reports (the
    error itself is raised where the write happened and reported there)."""
    import sys

    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, OSError) and "h5py" in repr(getattr(unraisable, "object", "")):
            return
        previous(unraisable)

    if getattr(sys.unraisablehook, "__name__", "") != "hook":
        sys.unraisablehook = hook
