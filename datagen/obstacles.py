"""Obstacles for the channel-flow generator: shapes, random non-overlapping placement and their
staircase rasterisation onto the cells of a uniform grid.

Every shape is described by a centre, a bounding radius (for placement) and an inside test on
points; a cell is solid when its centre is inside.  Shapes are JSON-friendly dicts so a
trajectory's geometry goes into the dataset as it was drawn.
"""
from __future__ import annotations

import math

import numpy as np

SHAPES = ("circle", "rectangle", "polygon")


def circle(cx: float, cy: float, radius: float) -> dict:
    return {"shape": "circle", "center": [float(cx), float(cy)], "radius": float(radius)}


def polygon(vertices) -> dict:
    """A convex polygon (vertices in counter-clockwise order)."""
    vertices = np.asarray(vertices, dtype=float)
    center = vertices.mean(axis=0)
    return {"shape": "polygon", "center": center.tolist(), "vertices": vertices.tolist()}


def rectangle(cx: float, cy: float, width: float, height: float, angle: float = 0.0) -> dict:
    c, s = math.cos(angle), math.sin(angle)
    corners = [(-width / 2, -height / 2), (width / 2, -height / 2), (width / 2, height / 2), (-width / 2, height / 2)]
    shape = polygon([(cx + c * x - s * y, cy + s * x + c * y) for x, y in corners])
    shape["shape"] = "rectangle"
    return shape


def bounding_radius(shape: dict) -> float:
    if shape["shape"] == "circle":
        return shape["radius"]
    return float(np.max(np.linalg.norm(np.asarray(shape["vertices"]) - np.asarray(shape["center"]), axis=1)))


def frontal_height(shape: dict) -> float:
    """Extent across the flow (y), the length that drag and lift coefficients are scaled by."""
    if shape["shape"] == "circle":
        return 2 * shape["radius"]
    y = np.asarray(shape["vertices"])[:, 1]
    return float(y.max() - y.min())


def inside(shape: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if shape["shape"] == "circle":
        cx, cy = shape["center"]
        return (x - cx) ** 2 + (y - cy) ** 2 <= shape["radius"] ** 2
    vertices = np.asarray(shape["vertices"])
    result = np.ones(np.shape(x), dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        result &= (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0) >= 0  # left of every edge (CCW)
    return result


def rasterize(shapes, nx: int, ny: int, h: float) -> np.ndarray:
    """Label array (nx, ny): 0 fluid, k + 1 the cells of obstacle k (cell centres inside)."""
    x = (np.arange(nx) + 0.5) * h
    y = (np.arange(ny) + 0.5) * h
    X, Y = np.meshgrid(x, y, indexing="ij")
    labels = np.zeros((nx, ny), dtype=np.int32)
    for k, shape in enumerate(shapes):
        labels[inside(shape, X, Y) & (labels == 0)] = k + 1
    return labels


def random_shape(rng: np.random.Generator, kind: str, size: float, cx: float, cy: float) -> dict:
    """A shape of bounding radius ``size`` around (cx, cy)."""
    if kind == "circle":
        return circle(cx, cy, size)
    if kind == "rectangle":
        aspect = rng.uniform(0.5, 2.0)
        angle = rng.uniform(0, math.pi)
        diagonal = 2 * size
        width = diagonal / math.sqrt(1 + 1 / aspect**2)
        return rectangle(cx, cy, width, width / aspect, angle)
    if kind == "polygon":  # points on a circle at sorted, well-separated angles: convex, not a sliver
        count = int(rng.integers(4, 8))
        gaps = rng.uniform(0.5, 1.5, size=count)
        angles = rng.uniform(0, 2 * math.pi) + np.cumsum(gaps / gaps.sum() * 2 * math.pi)
        return polygon(np.stack([cx + size * np.cos(angles), cy + size * np.sin(angles)], axis=1))
    raise ValueError(f"obstacle shape must be one of {SHAPES}, got {kind!r}")


def place(rng: np.random.Generator, count: int, kinds, size_range, length: float, height: float,
          x_range=(0.1, 0.6), gap: float = 0.04, tries: int = 2000) -> list[dict]:
    """``count`` random, non-overlapping obstacles of the given kinds with bounding radii in
    ``size_range`` (fractions of the channel height), centres in ``x_range`` (fractions of the
    length), at least ``gap * height`` apart and from the walls."""
    shapes, circles = [], []
    for k in range(count):
        for _ in range(tries):
            r = rng.uniform(*size_range) * height
            cx = rng.uniform(x_range[0] * length, x_range[1] * length)
            lo, hi = r + gap * height, height - r - gap * height
            if hi <= lo:
                continue
            cy = rng.uniform(lo, hi)
            if all(math.hypot(cx - x, cy - y) >= r + q + gap * height for x, y, q in circles):
                kind = kinds[int(rng.integers(len(kinds)))]
                shapes.append(random_shape(rng, kind, r, cx, cy))
                circles.append((cx, cy, r))
                break
        else:
            raise ValueError(f"could not place obstacle {k + 1} of {count} without overlap in {tries} tries: "
                             "fewer or smaller obstacles, or a longer channel")
    return shapes
