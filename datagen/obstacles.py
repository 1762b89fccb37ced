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


def point(value, what: str) -> tuple[float, float]:
    from datagen.levelspec import number

    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ValueError(f"{what} must be a point [x, y], got {value!r}")
    try:
        return number("float", value[0]), number("float", value[1])
    except ValueError as err:
        raise ValueError(f"{what} must be a point [x, y] ({err})") from None


def explicit_shape(entry, what: str = "obstacle") -> dict:
    """A shape from a spec file's entry: ``{shape: circle, center: [x, y], radius: r}``,
    ``{shape: rectangle, center: [x, y], width: w, height: h, angle: radians (optional)}`` or
    ``{shape: polygon, vertices: [[x, y], ...]}`` (convex, counter-clockwise); errors name the entry."""
    if not isinstance(entry, dict):
        raise ValueError(f"{what} must be a mapping with a 'shape' key, got {entry!r}")
    kind = entry.get("shape")
    allowed = {"circle": {"shape", "center", "radius"}, "rectangle": {"shape", "center", "width", "height", "angle"},
               "polygon": {"shape", "vertices"}}
    if kind not in allowed:
        raise ValueError(f"{what}: shape must be one of {', '.join(SHAPES)}, got {kind!r}")
    unknown = sorted(set(entry) - allowed[kind])
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {unknown} for a {kind} (it takes {sorted(allowed[kind])})")
    from datagen.levelspec import number, positive

    length = lambda key: positive(entry.get(key), f"{what}: {key}")  # noqa: E731
    if kind == "circle":
        return circle(*point(entry.get("center"), f"{what}: center"), length("radius"))
    if kind == "rectangle":
        try:
            angle = number("float", entry.get("angle", 0.0))
        except ValueError as err:
            raise ValueError(f"{what}: angle must be a number (radians) ({err})") from None
        return rectangle(*point(entry.get("center"), f"{what}: center"), length("width"), length("height"), angle)
    vertices = entry.get("vertices")
    if not isinstance(vertices, (list, tuple)) or len(vertices) < 3:
        raise ValueError(f"{what}: vertices must be a list of at least 3 points, got {vertices!r}")
    points = np.array([point(v, f"{what}: vertex") for v in vertices])
    edges = np.roll(points, -1, axis=0) - points
    cross = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not (cross > 0).all():
        raise ValueError(f"{what}: the polygon must be convex with its vertices counter-clockwise")
    return polygon(points)


def stored_shape(entry, what: str = "obstacle") -> dict:
    """A shape in the stored form (a level's ``geometry`` JSON: circles by centre and radius,
    rectangles and polygons by their vertices), checked like a spec file's entry."""
    if not isinstance(entry, dict) or entry.get("shape") not in SHAPES:
        raise ValueError(f"{what} must be a mapping with 'shape' one of {', '.join(SHAPES)}, got {entry!r}")
    if entry["shape"] == "circle":
        return explicit_shape({k: entry.get(k) for k in ("shape", "center", "radius")}, what)
    shape = explicit_shape({"shape": "polygon", "vertices": entry.get("vertices")}, what)
    shape["shape"] = entry["shape"]
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


def label_points(shapes, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per point: 0 outside every shape, k + 1 inside shape k (the first one, if they overlap)."""
    labels = np.zeros(np.shape(x), dtype=np.int32)
    for k, shape in enumerate(shapes):
        labels[inside(shape, x, y) & (labels == 0)] = k + 1
    return labels


def rasterize(shapes, nx: int, ny: int, h: float) -> np.ndarray:
    """Label array (nx, ny): 0 fluid, k + 1 the cells of obstacle k (cell centres inside)."""
    X, Y = np.meshgrid((np.arange(nx) + 0.5) * h, (np.arange(ny) + 0.5) * h, indexing="ij")
    return label_points(shapes, X, Y)


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
