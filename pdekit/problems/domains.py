"""Domains of the analytic problems (:mod:`pdekit.problems`), in any dimension, described by a
signed distance function (negative inside) so that random walks (the distance to the boundary is
the radius of the next sphere) and collocation (sampling inside and on the boundary) share them.

For every domain here ``distance`` is exact for points inside (what walk-on-spheres needs: a
sphere of that radius never leaves the domain); outside it may only bound the true distance.
"""
from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def _uniform(n: int, dim: int, generator, dtype=torch.float64, device="cpu") -> Tensor:
    return torch.rand(n, dim, generator=generator, dtype=dtype, device=device)


def _box_distance(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    q = (x - centre).abs() - half
    return q.clamp_min(0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0)


class Domain:
    """A bounded open set Ω ⊂ ℝᵈ inside the box ``bounds``."""

    bounds: tuple
    dim: int
    box_faces_reflect = False  # pdekit's committor problems reflect on the outer box (Neumann 0)

    def distance(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def contains(self, x: Tensor) -> Tensor:
        return self.distance(x) < 0

    def _box(self, x: Tensor):
        lo = torch.tensor([b[0] for b in self.bounds], dtype=x.dtype, device=x.device)
        hi = torch.tensor([b[1] for b in self.bounds], dtype=x.dtype, device=x.device)
        return lo, hi

    def sample_interior(self, n: int, generator=None, device="cpu") -> Tensor:
        """``n`` points uniformly inside (rejection from the bounding box)."""
        lo, hi = self._box(torch.zeros(1, dtype=torch.float64, device=device))
        kept, count = [], 0
        while count < n:
            x = lo + (hi - lo) * _uniform(max(2 * (n - count), 64), self.dim, generator, device=device)
            x = x[self.contains(x)]
            kept.append(x)
            count += len(x)
        return torch.cat(kept)[:n]

    def project(self, x: Tensor) -> Tensor:
        """The nearest boundary point x − d ∇d (exact for an exact distance)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            d = self.distance(x)
            (grad,) = torch.autograd.grad(d.sum(), x)
        return (x - d[:, None] * grad).detach()

    def reflect_on_box(self, x: Tensor) -> Tensor:
        """Mirror points that left the bounding box back inside (reflecting walls)."""
        lo, hi = self._box(x)
        x = torch.where(x < lo, 2 * lo - x, x)
        return torch.where(x > hi, 2 * hi - x, x)

    def sample_boundary(self, n: int, generator=None, device="cpu") -> Tensor:
        """``n`` points on the boundary: bounding-box points projected along the distance gradient
        (three times), which lands exactly on the boundary for an exact distance."""
        lo, hi = self._box(torch.zeros(1, dtype=torch.float64, device=device))
        x = lo + (hi - lo) * _uniform(n, self.dim, generator, device=device)
        for _ in range(3):
            x = self.project(x)
        return x

    def normal(self, x: Tensor) -> Tensor:
        """Outward unit normal at boundary points (the distance's gradient)."""
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.distance(x).sum(), x)
        return grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-300)


class Box(Domain):
    def __init__(self, bounds):
        self.bounds, self.dim = tuple((float(lo), float(hi)) for lo, hi in bounds), len(bounds)

    def distance(self, x):
        return _box_distance(x, *self._box(x))

    def sample_boundary(self, n, generator=None, device="cpu"):
        # a face chosen in proportion to its area, then a point on it
        lo, hi = self._box(torch.zeros(1, dtype=torch.float64, device=device))
        x = lo + (hi - lo) * _uniform(n, self.dim, generator, device=device)
        widths = hi - lo
        areas = torch.stack([widths.prod() / widths[i] for i in range(self.dim)]).repeat(2)
        face = torch.multinomial(areas / areas.sum(), n, replacement=True, generator=generator)
        axis, side = face % self.dim, face // self.dim
        x[torch.arange(n, device=device), axis] = torch.where(side == 0, lo[axis], hi[axis])
        return x

    def __repr__(self):
        return "box " + " × ".join(f"[{lo:.4g}, {hi:.4g}]" for lo, hi in self.bounds)


class Ball(Domain):
    """The ball ``|x − centre| < radius`` (centre the origin by default)."""

    def __init__(self, dim: int, radius: float = 1.0):
        self.dim, self.radius = int(dim), float(radius)
        self.bounds = ((-self.radius, self.radius),) * self.dim

    def distance(self, x):
        return x.norm(dim=-1) - self.radius

    def sample_interior(self, n, generator=None, device="cpu"):
        direction = self.sample_boundary(n, generator, device) / self.radius
        r = torch.rand(n, generator=generator, dtype=torch.float64, device=device) ** (1.0 / self.dim)
        return self.radius * r[:, None] * direction

    def sample_boundary(self, n, generator=None, device="cpu"):
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=device)
        return self.radius * z / z.norm(dim=-1, keepdim=True)

    def __repr__(self):
        return f"{self.dim}-ball of radius {self.radius:g}"


class BoxWithHoles(Domain):
    """A box minus a union of balls (``holes``: (centre, radius) pairs).  The distance inside is
    min(distance to the box's faces, distance to the nearest hole), which is exact there."""

    def __init__(self, bounds, holes, box_faces_reflect: bool = False):
        self.box = Box(bounds)
        self.bounds, self.dim = self.box.bounds, self.box.dim
        self.holes = [(tuple(float(c) for c in centre), float(radius)) for centre, radius in holes]
        self.box_faces_reflect = box_faces_reflect

    def hole_distance(self, x):
        return torch.stack([(x - torch.tensor(c, dtype=x.dtype, device=x.device)).norm(dim=-1) - r
                            for c, r in self.holes]).min(0).values

    def distance(self, x):
        return torch.maximum(self.box.distance(x), -self.hole_distance(x))

    def sample_boundary(self, n, generator=None, device="cpu"):
        # hole circles and box faces in proportion to their measure (2-D: circumference / perimeter)
        perimeter = [2 * math.pi * r for _, r in self.holes] if self.dim == 2 else [r ** (self.dim - 1) for _, r in self.holes]
        widths = [hi - lo for lo, hi in self.bounds]
        box_measure = 2 * sum(math.prod(widths) / w for w in widths)
        weights = torch.tensor(perimeter + [box_measure], dtype=torch.float64)
        which = torch.multinomial(weights / weights.sum(), n, replacement=True, generator=generator).to(device)
        x = self.box.sample_boundary(n, generator, device)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=device)
        z = z / z.norm(dim=-1, keepdim=True)
        for k, (centre, radius) in enumerate(self.holes):
            pick = which == k
            x[pick] = torch.tensor(centre, dtype=torch.float64, device=device) + radius * z[pick]
        return x

    def on_box_face(self, x, tol: float = 1e-9) -> Tensor:
        return self.box.distance(x).abs() < tol

    def __repr__(self):
        return f"{self.box!r} minus {len(self.holes)} balls"


class LShape(Domain):
    """[−1, 1]² without the quadrant (0, 1) × (−1, 0)."""

    def __init__(self):
        self.dim, self.bounds = 2, ((-1.0, 1.0), (-1.0, 1.0))
        self.outer, self.cut = Box(self.bounds), Box(((0.0, 1.0), (-1.0, 0.0)))

    def distance(self, x):
        return torch.maximum(self.outer.distance(x), -self.cut.distance(x))

    def sample_boundary(self, n, generator=None, device="cpu"):
        # the six edges (total length 8), uniformly
        t = 8 * torch.rand(n, generator=generator, dtype=torch.float64, device=device)
        corners = torch.tensor([[-1, -1], [0, -1], [0, 0], [1, 0], [1, 1], [-1, 1], [-1, -1]],
                               dtype=torch.float64, device=device)
        lengths = (corners[1:] - corners[:-1]).norm(dim=-1)
        ends = lengths.cumsum(0)
        edge = torch.searchsorted(ends, t, right=True).clamp_max(len(lengths) - 1)
        start = ends[edge] - lengths[edge]
        fraction = ((t - start) / lengths[edge])[:, None]
        return corners[edge] + fraction * (corners[edge + 1] - corners[edge])

    def __repr__(self):
        return "L-shape [−1, 1]² ∖ (0, 1)×(−1, 0)"
