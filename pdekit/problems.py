"""Analytic PDE problems by name: a domain, the equation, boundary data and (where known) the
exact solution, in any dimension.  Shared by the mesh-free solvers (GP-HM, Feynman–Kac PINNs).

A problem solves

    −Δu + V u + c · u(u² − 1) = f   in the domain,   u = g on its boundary,

with constant V ≥ 0 (``reaction``) and c (``allen_cahn``; the Allen–Cahn problems use c = −1,
i.e. u_xx + u(u² − 1) = −f).  With an exact solution u*, f is derived from it (Laplacian by
automatic differentiation in float64, exact up to rounding) and g = u*.  The domain is a box
(``bounds``) or any region inside it given by a signed distance function (negative inside).

``get(name)`` returns a registered problem; ``PROBLEMS`` lists them (``pdekit problems`` prints them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from pdekit.errors import ConfigError

Tensor = torch.Tensor


def box_sdf(bounds) -> Callable[[Tensor], Tensor]:
    """Signed distance to the boundary of a box (negative inside)."""
    lo = torch.tensor([b[0] for b in bounds], dtype=torch.float64)
    hi = torch.tensor([b[1] for b in bounds], dtype=torch.float64)

    def sdf(x: Tensor) -> Tensor:
        centre, half = (lo + hi).to(x) / 2, (hi - lo).to(x) / 2
        q = (x - centre).abs() - half
        return q.clamp_min(0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0)

    return sdf


@dataclass(frozen=True)
class Problem:
    name: str
    dim: int
    bounds: tuple  # ((lo, hi), ...) per axis: the domain or its bounding box
    exact: Callable[[Tensor], Tensor] | None  # (n, dim) → (n,)
    description: str
    reaction: float = 0.0
    allen_cahn: float = 0.0
    sdf: Callable[[Tensor], Tensor] | None = field(default=None, compare=False)

    def signed_distance(self, x: Tensor) -> Tensor:
        return (self.sdf or box_sdf(self.bounds))(x)

    def solution(self, x: Tensor) -> Tensor:
        if self.exact is None:
            raise ConfigError(f"problem {self.name} has no exact solution")
        return self.exact(x)

    def laplacian_of_solution(self, x: Tensor) -> Tensor:
        """Δu* at points ``x`` (n, dim), by automatic differentiation."""
        x = x.detach().to(torch.float64).requires_grad_(True)
        u = self.solution(x)
        (grad,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        if not grad.requires_grad:  # u is (at most) linear: no second derivatives
            return torch.zeros(len(x), dtype=torch.float64, device=x.device)
        second = [torch.autograd.grad(grad[:, i].sum(), x, retain_graph=True, allow_unused=True)[0] for i in range(self.dim)]
        return sum(torch.zeros(len(x), dtype=x.dtype, device=x.device) if g is None else g[:, i].detach()
                   for i, g in enumerate(second))

    def source(self, x: Tensor) -> Tensor:
        """f at points ``x`` (n, dim)."""
        u = self.solution(x).detach().to(torch.float64)
        return -self.laplacian_of_solution(x) + self.reaction * u + self.allen_cahn * u * (u**2 - 1)

    def boundary(self, x: Tensor) -> Tensor:
        """g at points ``x`` (n, dim) on the boundary."""
        return self.solution(x)

    def residual(self, u: Tensor, laplacian: Tensor, f: Tensor) -> Tensor:
        """The equation's residual given u, Δu and f at the same points."""
        return -laplacian + self.reaction * u + self.allen_cahn * u * (u**2 - 1) - f


TWO_PI = 2 * math.pi
PROBLEMS: dict[str, Problem] = {}


def register(problem: Problem) -> Problem:
    PROBLEMS[problem.name] = problem
    return problem


def _1d(name, u, bounds, description, **kw):
    return register(Problem(name, 1, (bounds,), lambda x: u(x[:, 0]), description, **kw))


def _2d(name, u, bounds, description, **kw):
    return register(Problem(name, 2, (bounds, bounds), lambda x: u(x[:, 0], x[:, 1]), description, **kw))


# GP-HM's problems (Fang et al., ICLR 2024): 1-D and 2-D, high-frequency and multi-scale
_1d("poisson-1d-sin100", lambda x: torch.sin(100 * x), (0.0, TWO_PI), "u = sin(100x) on [0, 2π]")
_1d("poisson-1d-xsin200", lambda x: x * torch.sin(200 * x), (0.0, TWO_PI), "u = x sin(200x) on [0, 2π]")
_1d("poisson-1d-sin6cos100", lambda x: torch.sin(6 * x) * torch.cos(100 * x), (0.0, TWO_PI),
    "u = sin(6x) cos(100x) on [0, 2π]")
_1d("poisson-1d-sin500", lambda x: torch.sin(500 * x) - 2 * (x - 0.5) ** 2, (0.0, 1.0),
    "u = sin(500x) − 2(x − 0.5)² on [0, 1]")
_1d("poisson-1d-mix", lambda x: torch.sin(x) + 0.1 * torch.sin(20 * x) + 0.05 * torch.sin(100 * x), (0.0, 1.0),
    "u = sin(x) + 0.1 sin(20x) + 0.05 sin(100x) on [0, 1]")
_1d("allen-cahn-1d-sin100", lambda x: torch.sin(100 * x), (0.0, TWO_PI),
    "u_xx + u(u² − 1) = f, u = sin(100x) on [0, 2π]", allen_cahn=-1.0)
_2d("poisson-2d-sin100", lambda x, y: torch.sin(100 * x) * torch.sin(100 * y), (0.0, TWO_PI),
    "u = sin(100x) sin(100y) on [0, 2π]²")
_2d("poisson-2d-multiscale", lambda x, y: torch.sin(6 * x) * torch.cos(20 * x) + torch.sin(6 * y) * torch.cos(20 * y),
    (0.0, TWO_PI), "u = sin(6x) cos(20x) + sin(6y) cos(20y) on [0, 2π]²")
for _k in (1, 4, 16):
    _2d(f"poisson-square-sin{_k}", lambda x, y, k=_k: torch.sin(k * math.pi * x) * torch.sin(k * math.pi * y),
        (0.0, 1.0), f"u = sin({_k}πx) sin({_k}πy) on the unit square")


def get(name: str) -> Problem:
    """The registered problem ``name``; a one-line error naming the choices otherwise."""
    if not isinstance(name, str) or name not in PROBLEMS:
        raise ConfigError(f"unknown problem {name!r}; choose from {', '.join(sorted(PROBLEMS))}")
    return PROBLEMS[name]
