"""Boundary conditions on box faces and on the walls of masked-out regions (obstacles, holes).

Every boundary condition ends up in two arrays on the grid padded by one ghost layer per side,
``bc_type`` (int8) and ``bc_value`` (float), which is also how datasets store them:

* ``ACTIVE`` (0): an unknown.
* ``DIRICHLET`` (1): the node's value is known (``bc_value``).  The boundary passes through the
  node itself, one spacing from its active neighbours.
* ``NEUMANN`` (2): the node is outside the domain and the boundary passes through the faces it
  shares with active neighbours, where the outward flux ``a du/dn = bc_value`` is prescribed
  (``n`` pointing out of the domain, into the node).

Box faces fill the ghost layer; obstacle (inactive, ``mask == False``) nodes inside the array take
the ``obstacle`` condition.  Simplification: an obstacle node carries one Neumann flux for all of
its faces (exact for the usual insulated wall, ``flux = 0``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np

from pdekit.errors import GridMismatchError, NonFiniteError

ACTIVE, DIRICHLET, NEUMANN = 0, 1, 2
KIND_NAMES = {"dirichlet": DIRICHLET, "neumann": NEUMANN}

Value = Union[float, np.ndarray, Callable[..., np.ndarray]]
_AXES = "xyz"


@dataclass(frozen=True)
class BoundaryCondition:
    """One condition: ``kind`` is ``"dirichlet"`` (value of u) or ``"neumann"`` (outward flux
    ``a du/dn``).  ``value`` is a number, an array, or a function of the coordinates (called with
    one array per axis) evaluated where the boundary lies."""

    kind_name: str
    value: Value = 0.0

    def __post_init__(self):
        if self.kind_name not in KIND_NAMES:
            raise ValueError(f"boundary kind must be 'dirichlet' or 'neumann', got {self.kind_name!r}")

    @property
    def kind(self) -> int:
        return KIND_NAMES[self.kind_name]

    def evaluate(self, coords: tuple[np.ndarray, ...], where: str) -> np.ndarray:
        shape = coords[0].shape
        value = self.value(*coords) if callable(self.value) else self.value
        value = np.asarray(value, dtype=np.float64)
        try:
            value = np.broadcast_to(value, shape)
        except ValueError:
            raise GridMismatchError(
                f"{self.kind_name} value on {where} has shape {value.shape}, expected {shape}") from None
        if not np.all(np.isfinite(value)):
            raise NonFiniteError(f"{self.kind_name} value on {where} contains NaN or Inf")
        return value


def Dirichlet(value: Value = 0.0) -> BoundaryCondition:
    """u = value on the boundary."""
    return BoundaryCondition("dirichlet", value)


def Neumann(flux: Value = 0.0) -> BoundaryCondition:
    """a du/dn = flux on the boundary (n the outward normal)."""
    return BoundaryCondition("neumann", flux)


def _face_key(key) -> tuple[int, int]:
    """'x-', 'y+', ... or (axis, side) with side 0 = low, 1 = high."""
    if isinstance(key, tuple):
        axis, side = key
        return int(axis), int(side)
    if isinstance(key, str) and len(key) == 2 and key[0] in _AXES and key[1] in "-+":
        return _AXES.index(key[0]), 0 if key[1] == "-" else 1
    raise ValueError(f"face names are 'x-', 'x+', 'y-', 'y+', 'z-', 'z+' or (axis, side) tuples, got {key!r}")


@dataclass(frozen=True)
class BoundaryConditions:
    """Conditions for every box face plus the walls of masked-out regions.

    Args:
        default: condition of every face not named in ``faces`` (default: homogeneous Dirichlet).
        faces: ``{"x-": Neumann(0.0), (1, 1): Dirichlet(g), ...}``.
        obstacle: condition on inactive nodes inside the array (default: homogeneous Dirichlet).
    """

    default: BoundaryCondition = field(default_factory=Dirichlet)
    faces: dict = field(default_factory=dict)
    obstacle: BoundaryCondition = field(default_factory=Dirichlet)

    def __post_init__(self):
        object.__setattr__(self, "faces", {_face_key(k): v for k, v in self.faces.items()})
        for key, bc in self.faces.items():
            if not isinstance(bc, BoundaryCondition):
                raise TypeError(f"face {key} needs a BoundaryCondition (Dirichlet/Neumann), got {type(bc).__name__}")

    def face(self, axis: int, side: int) -> BoundaryCondition:
        return self.faces.get((axis, side), self.default)

    def to_arrays(self, grid, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(bc_type, bc_value)`` on the grid padded by one ghost layer per side."""
        for axis, side in self.faces:
            if not 0 <= axis < grid.ndim or side not in (0, 1):
                raise GridMismatchError(f"face {(axis, side)} does not exist on a {grid.ndim}D grid")
        padded = tuple(n + 2 for n in grid.shape)
        bc_type = np.full(padded, DIRICHLET, dtype=np.int8)  # corners: never touched by a 2d+1 stencil
        bc_value = np.zeros(padded, dtype=np.float64)
        interior = tuple(slice(1, -1) for _ in grid.shape)
        for axis in range(grid.ndim):
            for side in (0, 1):
                bc = self.face(axis, side)
                where = "ghost" if bc.kind == DIRICHLET else "face"
                name = f"face {_AXES[axis]}{'-+'[side]}"
                values = bc.evaluate(grid.face_coordinates(axis, side, where), name)
                index = list(interior)
                index[axis] = 0 if side == 0 else -1
                bc_type[tuple(index)] = bc.kind
                bc_value[tuple(index)] = values
        bc_type[interior] = ACTIVE
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            grid.check_field(mask, "mask", batched=False)
            inactive = ~mask
            if inactive.any():
                values = self.obstacle.evaluate(grid.coordinates(), "obstacle nodes")
                bc_type[interior][inactive] = self.obstacle.kind
                bc_value[interior][inactive] = values[inactive]
        return bc_type, bc_value
