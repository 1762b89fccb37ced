"""Cut-cell geometry of curved obstacles on the channel's staggered (MAC) grid.

The staircase treatment (a cell is solid when its centre is inside) moves every wall by up to
half a cell, which costs the flow one order of accuracy.  Here the obstacles' true boundaries
enter the discretisation in two places, both second order and both keeping the linear systems
symmetric:

* **pressure** (cut cells, the variational projection of Batty, Bertails & Bridson 2007 and Ng,
  Min & Gibou 2009): each cell face is open by the fraction of its length outside the obstacles;
  the divergence weighs face fluxes by it and the pressure operator ``A_ij = alpha_ij / h^2`` is
  pdekit's :class:`~pdekit.operators.DiffusionOperator` with ``face_fractions``;
* **velocity** (the symmetric ghost-fluid Laplacian of Gibou, Fedkiw, Cheng & Kang 2002): a
  velocity node in the fluid whose stencil neighbour lies inside an obstacle uses the wall
  crossing at ``theta h`` along that grid line, with ``u = 0`` there, through a ghost value
  extrapolated linearly: the row's diagonal grows by ``(1/theta - 1)/h^2`` and nothing else
  changes, so the Laplacian stays symmetric negative definite.

Obstacles are convex (circles, rectangles, convex polygons), so a straight segment meets each in
one interval, found exactly: a quadratic for circles, half-plane clipping for polygons.
"""
from __future__ import annotations

import numpy as np

from datagen.obstacles import label_points

MIN_FRACTION = 0.01  # faces open by less are closed: slivers only make the pressure system stiff
MIN_THETA = 0.01  # a wall closer than this (in cells) to a velocity node is taken at that distance


def chord(shape: dict, start: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the lines ``start + t direction`` (arrays ``(m, 2)``) lie inside ``shape``: ``t`` in
    ``[t0, t1]`` (``t0 > t1`` for lines that miss it)."""
    direction = np.broadcast_to(np.asarray(direction, float), np.shape(start))
    if shape["shape"] == "circle":
        offset = start - np.asarray(shape["center"])
        a = (direction**2).sum(1)
        b = 2 * (offset * direction).sum(1)
        c = (offset**2).sum(1) - shape["radius"] ** 2
        disc = b * b - 4 * a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        t0, t1 = (-b - root) / (2 * a), (-b + root) / (2 * a)
        return np.where(disc > 0, t0, np.inf), np.where(disc > 0, t1, -np.inf)
    vertices = np.asarray(shape["vertices"], float)
    t0, t1 = np.full(len(start), -np.inf), np.full(len(start), np.inf)
    for v0, v1 in zip(vertices, np.roll(vertices, -1, axis=0)):
        inward = np.array([-(v1 - v0)[1], (v1 - v0)[0]])  # counter-clockwise: the inside is on the left
        height = (start - v0) @ inward  # >= 0 inside this edge's half-plane
        rate = direction @ inward  # noqa: E221
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -height / rate
        entering, leaving = rate > 0, rate < 0
        t0 = np.where(entering, np.maximum(t0, t), t0)
        t1 = np.where(leaving, np.minimum(t1, t), t1)
        parallel_outside = (rate == 0) & (height < 0)
        t0 = np.where(parallel_outside, np.inf, t0)
    return t0, t1


def _segments(start: np.ndarray, direction: np.ndarray, shapes):
    """Per shape, the part ``[lo, hi]`` of the unit segments ``start + t direction``, ``t`` in
    [0, 1], inside it (``lo = hi`` when they miss it)."""
    parts = []
    for shape in shapes:
        t0, t1 = chord(shape, start, direction)
        lo, hi = np.clip(t0, 0.0, 1.0), np.clip(t1, 0.0, 1.0)
        parts.append((lo, np.maximum(hi, lo)))
    return parts


def _crossings(start, parts, direction, shape, axis):
    """Where the obstacles' walls cross one family of faces (the unit segments ``start + t
    direction`` of ``parts``, faces across ``axis``): the ends of each obstacle's part strictly
    inside a face.  Returns, per cell (from its two faces across ``axis``), the sum of those points
    and then, per obstacle, their number."""
    points = np.zeros(start.shape)
    per_face = []
    for lo, hi in parts:
        counted = np.zeros(len(start))
        for t in (lo, hi):
            hit = (t > 0) & (t < 1) & (hi > lo)
            points += np.where(hit[:, None], start + t[:, None] * direction, 0.0)
            counted += hit
        per_face.append(counted.reshape(shape))
    n = shape[axis] - 1
    # a face belongs to the cells on both its sides
    return [np.take(a, np.arange(n), axis) + np.take(a, np.arange(1, n + 1), axis)
            for a in [points.reshape(shape + (2,))] + per_face]


class CutCellGeometry:
    """Face fractions, velocity-node wall distances and wall pieces of obstacles ``shapes`` on an
    ``nx x ny`` grid of cells of side ``h`` (the layout of :class:`datagen.ns_channel.ChannelFlow`:
    ``u`` at ``(i h, (j + 1/2) h)``, ``v`` at ``((i + 1/2) h, j h)``)."""

    def __init__(self, shapes, nx: int, ny: int, h: float):
        self.shapes, self.nx, self.ny, self.h = list(shapes), nx, ny, h
        # open fractions of the vertical (u) faces x = i h and horizontal (v) faces y = j h
        i, j = np.meshgrid(np.arange(nx + 1), np.arange(ny), indexing="ij")
        u_start = np.stack([i * h, j * h], -1).reshape(-1, 2)
        u_parts = _segments(u_start, np.array([0.0, h]), self.shapes)
        i, j = np.meshgrid(np.arange(nx), np.arange(ny + 1), indexing="ij")
        v_start = np.stack([i * h, j * h], -1).reshape(-1, 2)
        v_parts = _segments(v_start, np.array([h, 0.0]), self.shapes)
        self.u_open = self._open(u_parts, (nx + 1, ny))
        self.v_open = self._open(v_parts, (nx, ny + 1))
        # the pressure unknowns: cells with an open face
        self.active = (self.u_open[:-1] + self.u_open[1:] + self.v_open[:, :-1] + self.v_open[:, 1:]) > 0
        # velocity nodes inside an obstacle carry the wall's velocity (0); the others are unknowns
        x_u, y_u = np.meshgrid(np.arange(nx + 1) * h, (np.arange(ny) + 0.5) * h, indexing="ij")
        x_v, y_v = np.meshgrid((np.arange(nx) + 0.5) * h, np.arange(ny + 1) * h, indexing="ij")
        self.u_fluid = label_points(self.shapes, x_u, y_u) == 0
        self.v_fluid = label_points(self.shapes, x_v, y_v) == 0
        self.u_wall = self._wall_term(x_u, y_u, self.u_fluid)
        self.v_wall = self._wall_term(x_v, y_v, self.v_fluid)
        self._wall_pieces(u_start, u_parts, v_start, v_parts)

    @staticmethod
    def _open(parts, shape):
        closed = sum((hi - lo for lo, hi in parts), np.zeros(int(np.prod(shape))))
        fraction = np.clip(1.0 - closed, 0.0, 1.0).reshape(shape)
        return np.where(fraction < MIN_FRACTION, 0.0, fraction)

    def _wall_term(self, x, y, fluid):
        """``sum over stencil neighbours inside an obstacle of (1/theta - 1) / h^2`` per fluid node,
        ``theta h`` the distance to the wall along that grid line (0 elsewhere)."""
        term = np.zeros(x.shape)
        start = np.stack([x, y], -1)
        for axis in (0, 1):
            for step in (-1, 1):
                neighbour = np.roll(fluid, -step, axis=axis)  # fluid[i + step] at i
                edge = [slice(None)] * 2
                edge[axis] = -1 if step == 1 else 0  # no wrap-around: channel boundaries are not obstacles
                neighbour[tuple(edge)] = True
                cut = fluid & ~neighbour
                if not cut.any():
                    continue
                direction = np.zeros(2)
                direction[axis] = step * self.h
                points = start[cut]
                theta = np.ones(len(points))
                for shape in self.shapes:
                    t0, t1 = chord(shape, points, direction)
                    hit = (t1 >= t0) & (t0 >= 0) & (t0 <= 1)
                    theta = np.where(hit, np.minimum(theta, t0), theta)
                theta = np.maximum(theta, MIN_THETA)
                term[cut] += (1.0 / theta - 1.0) / self.h**2
        return term

    def _wall_pieces(self, u_start, u_parts, v_start, v_parts):
        """The cells the walls cross: their flat index, obstacle, the wall piece's integrated normal
        (into the obstacle) ``-h (alpha_e - alpha_w, alpha_n - alpha_s)`` and its midpoint (between
        the two points where the wall crosses the cell's faces), for the surface pressure force."""
        nx, ny, h = self.nx, self.ny, self.h
        a_u, a_v = self.u_open, self.v_open
        normal = -h * np.stack([a_u[1:] - a_u[:-1], a_v[:, 1:] - a_v[:, :-1]], -1)  # (nx, ny, 2)
        cut = (np.abs(normal).sum(-1) > 1e-12 * h) & self.active
        u = _crossings(u_start, u_parts, np.array([0.0, h]), (nx + 1, ny), axis=0)
        v = _crossings(v_start, v_parts, np.array([h, 0.0]), (nx, ny + 1), axis=1)
        total = u[0] + v[0]  # per cell: the sum of the points where walls cross its faces
        owner = np.stack([a + b for a, b in zip(u[1:], v[1:])]) if self.shapes else np.zeros((0, nx, ny))
        count = owner.sum(0)  # (owner: per obstacle, how many crossings each cell has)
        centre = np.stack(np.meshgrid((np.arange(nx) + 0.5) * h, (np.arange(ny) + 0.5) * h, indexing="ij"), -1)
        midpoint = np.where(count[..., None] > 0, total / np.maximum(count, 1)[..., None], centre)
        index = np.argwhere(cut)
        self.wall_cells = np.ravel_multi_index(index.T, (nx, ny))
        self.wall_obstacle = np.argmax(owner, axis=0)[cut] if self.shapes else np.zeros(0, np.int64)
        self.wall_normal = normal[cut]
        self.wall_offset = (midpoint - centre)[cut]  # from the cell centre to the wall piece
