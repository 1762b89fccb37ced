"""Uniform Cartesian grids (1D/2D/3D): node positions and spacing.

Unknowns live at the nodes ``x_i = origin + i * spacing`` (``i = 0 .. n-1`` per axis).
Boundaries sit outside the array: a Dirichlet boundary passes through the ghost node one
spacing beyond the last node, a Neumann boundary through the face half a spacing beyond it
(see :mod:`pdekit.boundary`).  :meth:`Grid.box` picks spacing and origin so that a box
``[0, L]`` is matched exactly for the face types in use; with Dirichlet faces everywhere this
is the classical finite-difference grid (``h = L / (n + 1)``), with Neumann faces everywhere
the cell-centred finite-volume grid (``h = L / n``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pdekit.errors import GridMismatchError


def _per_axis(value, ndim: int, name: str) -> tuple[float, ...]:
    if np.isscalar(value):
        return (float(value),) * ndim
    values = tuple(float(v) for v in value)
    if len(values) != ndim:
        raise GridMismatchError(f"{name} has {len(values)} entries but the grid has {ndim} dimensions")
    return values


@dataclass(frozen=True)
class Grid:
    """A uniform Cartesian grid of ``shape`` nodes.

    Args:
        shape: number of nodes per axis (1 to 3 axes, each >= 2).
        spacing: node spacing per axis (scalar or one per axis), > 0.
        origin: coordinate of node 0 per axis.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]

    def __init__(self, shape: Sequence[int], spacing=1.0, origin=0.0):
        shape = tuple(int(n) for n in shape)
        if not 1 <= len(shape) <= 3:
            raise GridMismatchError(f"grids have 1 to 3 axes, got shape {shape}")
        if any(n < 2 for n in shape):
            raise GridMismatchError(f"every axis needs at least 2 nodes, got shape {shape}")
        spacing = _per_axis(spacing, len(shape), "spacing")
        if any(not np.isfinite(h) or h <= 0 for h in spacing):
            raise GridMismatchError(f"spacing must be positive and finite, got {spacing}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", _per_axis(origin, len(shape), "origin"))

    @classmethod
    def box(cls, shape: Sequence[int], lengths=1.0, bc=None) -> "Grid":
        """Grid whose boundaries fall exactly on the box ``[0, L_0] x ... `` for ``bc``'s face types.

        ``bc`` is a :class:`pdekit.boundary.BoundaryConditions` (default: Dirichlet everywhere).
        """
        from pdekit.boundary import BoundaryConditions, DIRICHLET

        shape = tuple(int(n) for n in shape)
        bc = bc if bc is not None else BoundaryConditions()
        lengths = _per_axis(lengths, len(shape), "lengths")
        spacing, origin = [], []
        for axis, (n, length) in enumerate(zip(shape, lengths)):
            # distance (in spacings) from the outermost node to the boundary on each side
            lo = 1.0 if bc.face(axis, 0).kind == DIRICHLET else 0.5
            hi = 1.0 if bc.face(axis, 1).kind == DIRICHLET else 0.5
            h = length / (n - 1 + lo + hi)
            spacing.append(h)
            origin.append(lo * h)
        return cls(shape, spacing, origin)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.spacing))

    def axis_coordinates(self, axis: int, padded: bool = False) -> np.ndarray:
        """Node coordinates along ``axis`` (with one ghost node per side if ``padded``)."""
        start = -1 if padded else 0
        count = self.shape[axis] + (2 if padded else 0)
        return self.origin[axis] + (np.arange(count) + start) * self.spacing[axis]

    def coordinates(self, padded: bool = False) -> tuple[np.ndarray, ...]:
        """Node coordinates as ``ndim`` arrays of the grid's shape (``indexing='ij'``); with
        ``padded`` of the shape grown by one ghost node per side."""
        axes = (self.axis_coordinates(k, padded) for k in range(self.ndim))
        return tuple(np.meshgrid(*axes, indexing="ij"))

    def face_coordinates(self, axis: int, side: int, where: str = "face") -> tuple[np.ndarray, ...]:
        """Coordinates of the boundary points of the face ``(axis, side)``.

        ``where="face"`` gives the face centres (half a spacing outside the array, where a Neumann
        boundary lies); ``where="ghost"`` the ghost nodes (one spacing outside, where a Dirichlet
        boundary lies).  Arrays have the grid's shape with ``axis`` removed.
        """
        shift = {"face": 0.5, "ghost": 1.0}[where]
        h, n = self.spacing[axis], self.shape[axis]
        normal = self.origin[axis] - shift * h if side == 0 else self.origin[axis] + (n - 1 + shift) * h
        others = [k for k in range(self.ndim) if k != axis]
        tangential = np.meshgrid(*(self.axis_coordinates(k) for k in others), indexing="ij")
        coords = list(tangential)
        full_shape = tuple(self.shape[k] for k in others)
        coords.insert(axis, np.full(full_shape, normal))
        return tuple(coords)

    def check_field(self, array, name: str, batched: bool | None = None) -> None:
        """Raise a clear error if ``array``'s trailing axes do not match the grid."""
        shape = tuple(array.shape)
        ok = shape[-self.ndim:] == self.shape if len(shape) >= self.ndim else False
        if batched is True:
            ok = ok and len(shape) == self.ndim + 1
        elif batched is False:
            ok = ok and len(shape) == self.ndim
        else:
            ok = ok and len(shape) in (self.ndim, self.ndim + 1)
        if not ok:
            expect = {True: f"(batch, {', '.join(map(str, self.shape))})",
                      False: str(self.shape)}.get(batched, f"{self.shape} or (batch, *{self.shape})")
            raise GridMismatchError(f"{name} has shape {shape}, expected {expect} for this grid")
