"""Analytic PDE problems by name: a domain, the equation, boundary data and (where known) the
exact solution, in any dimension.  Shared by the mesh-free solvers (GP-HM, Feynman–Kac PINNs)
and the Feynman–Kac label generators.

A problem solves

    −a Δu − b(x)·∇u + V u + c · u(u² − 1) = f   in the domain Ω,   u = g on ∂Ω,

with constant diffusion a > 0 (``diffusion``; 1 for Poisson, ½ for the generator ½Δ of Brownian
motion), a drift field b (``drift``, for exit-time and committor problems), constant V ≥ 0
(``reaction``: Schrödinger-type problems) and c (``allen_cahn``; the Allen–Cahn problems use c = −1,
i.e. u_xx + u(u² − 1) = −f).  With an exact solution u*, f is derived from it (derivatives by
automatic differentiation in float64, exact up to rounding) and g = u*; problems without one give
f and g directly.  The domain (:mod:`pdekit.problems.domains`) is a box (``bounds``) unless ``domain`` says
otherwise: a ball, an L-shape, a box with holes.

``get(name)`` returns a registered problem; ``PROBLEMS`` lists them (``pdekit problems`` prints them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from pdekit.problems.autodiff import gradient_and_laplacian
from pdekit.problems.domains import Ball, Box, BoxWithHoles, Domain, LShape
from pdekit.errors import ConfigError

Tensor = torch.Tensor


@dataclass(frozen=True)
class Problem:
    name: str
    dim: int
    bounds: tuple  # ((lo, hi), ...) per axis: the domain or its bounding box
    exact: Callable[[Tensor], Tensor] | None  # (n, dim) → (n,)
    description: str
    reaction: float = 0.0
    allen_cahn: float = 0.0
    diffusion: float = 1.0
    drift: Callable[[Tensor], Tensor] | None = field(default=None, compare=False)  # (n, dim) → (n, dim)
    source_fn: Callable[[Tensor], Tensor] | None = field(default=None, compare=False)
    boundary_fn: Callable[[Tensor], Tensor] | None = field(default=None, compare=False)
    domain: Domain | None = field(default=None, compare=False)
    reference: str = ""  # how the exact values were obtained when not in closed form

    def __post_init__(self):
        if self.domain is None:
            object.__setattr__(self, "domain", Box(self.bounds))

    @property
    def is_box(self) -> bool:
        return isinstance(self.domain, Box)

    def signed_distance(self, x: Tensor) -> Tensor:
        return self.domain.distance(x)

    def solution(self, x: Tensor) -> Tensor:
        if self.exact is None:
            raise ConfigError(f"problem {self.name} has no exact solution")
        return self.exact(x)

    def derivatives_of_solution(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(∇u*, Δu*) at points ``x`` (n, dim), by automatic differentiation."""
        with torch.enable_grad():
            x = x.detach().to(torch.float64).requires_grad_(True)
            return gradient_and_laplacian(self.solution(x), x, create_graph=False)

    def laplacian_of_solution(self, x: Tensor) -> Tensor:
        return self.derivatives_of_solution(x)[1]

    @property
    def has_source(self) -> bool:
        return self.source_fn is not zero_source

    def drift_at(self, x: Tensor) -> Tensor | None:
        return None if self.drift is None else self.drift(x)

    def source(self, x: Tensor) -> Tensor:
        """f at points ``x`` (n, dim)."""
        if self.source_fn is not None:
            return self.source_fn(x)
        u = self.solution(x).detach().to(torch.float64)
        grad, laplacian = self.derivatives_of_solution(x)
        return self.residual(u, laplacian, torch.zeros_like(u), grad, x)

    def boundary(self, x: Tensor) -> Tensor:
        """g at points ``x`` (n, dim) on the boundary."""
        return self.boundary_fn(x) if self.boundary_fn is not None else self.solution(x)

    def residual(self, u: Tensor, laplacian: Tensor, f: Tensor, gradient: Tensor | None = None,
                 points: Tensor | None = None) -> Tensor:
        """The equation's residual given u, Δu (and ∇u, the points, when there is a drift) and f."""
        out = -self.diffusion * laplacian + self.reaction * u + self.allen_cahn * u * (u**2 - 1) - f
        if self.drift is not None:
            if gradient is None or points is None:
                raise ValueError(f"problem {self.name} has a drift: the residual needs the gradient and the points")
            out = out - (self.drift(points) * gradient).sum(-1)
        return out


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


# The Feynman–Kac problems (FK-PINNs): balls in d = 2, 5, 10, an L-shape, a Schrödinger-type
# problem and mean exit times; every one has an exact solution.
def zero_source(x: Tensor) -> Tensor:
    """f = 0 (Laplace, committors): samplers skip the source term of such problems."""
    return torch.zeros(len(x), dtype=x.dtype, device=x.device)


def _ball(name, dim, u, description, **kw):
    return register(Problem(name, dim, ((-1.0, 1.0),) * dim, u, description, domain=Ball(dim), **kw))


for _d in (2, 5):
    # exp(x₁) cos(x₂) is harmonic in any dimension
    _ball(f"laplace-ball-{_d}d", _d, lambda x: torch.exp(x[:, 0]) * torch.cos(x[:, 1]),
          f"Δu = 0 in the unit {_d}-ball, u = exp(x₁) cos(x₂)", source_fn=zero_source)
for _d in (2, 5, 10):
    # with s = Σx_i/√d: Δ sin(2s) = −4 sin(2s), Δ |x|²/(2d) = 1
    _ball(f"poisson-ball-{_d}d", _d,
          lambda x, d=_d: torch.sin(2 * x.sum(-1) / math.sqrt(d)) + x.pow(2).sum(-1) / (2 * d),
          f"−Δu = f in the unit {_d}-ball, u = sin(2 Σx_i/√d) + |x|²/(2d)",
          source_fn=lambda x, d=_d: 4 * torch.sin(2 * x.sum(-1) / math.sqrt(d)) - 1)  # f written out: walks evaluate it often
    _ball(f"exit-time-ball-{_d}d", _d, lambda x, d=_d: (1 - x.pow(2).sum(-1)) / d,
          f"mean exit time of Brownian motion from the unit {_d}-ball: −½Δu = 1, u = 0 on the sphere, "
          "u = (1 − |x|²)/d", diffusion=0.5, source_fn=lambda x: torch.ones(len(x), dtype=x.dtype, device=x.device),
          boundary_fn=zero_source)


def _lshape_singular(x: Tensor) -> Tensor:
    r = x.norm(dim=-1)
    t = torch.atan2(x[:, 1], x[:, 0])
    # θ ∈ [0, 3π/2] inside; boundary points a rounding error into the cut-out quadrant go to its edges
    theta = torch.where(t >= -math.pi / 4, t.clamp_min(0), t + 2 * math.pi).clamp_max(1.5 * math.pi)
    return r ** (2 / 3) * torch.sin(2 * theta / 3)


register(Problem("laplace-lshape", 2, ((-1.0, 1.0),) * 2, _lshape_singular,
                 "Δu = 0 on the L-shape [−1, 1]² ∖ (0, 1)×(−1, 0), u = r^(2/3) sin(2θ/3) (corner singularity)",
                 domain=LShape(), source_fn=zero_source))
register(Problem("poisson-lshape", 2, ((-1.0, 1.0),) * 2,
                 lambda x: torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1]) + x[:, 0] * x[:, 1],
                 "−Δu = f on the L-shape, u = sin(πx) sin(πy) + xy", domain=LShape()))
register(Problem("schrodinger-square", 2, ((0.0, 1.0),) * 2,
                 lambda x: torch.sin(2 * math.pi * x[:, 0]) * torch.sin(2 * math.pi * x[:, 1]) + x[:, 0] * x[:, 1],
                 "−Δu + V u = f on the unit square, V = 10, u = sin(2πx) sin(2πy) + xy", reaction=10.0))
register(Problem("schrodinger-ball-5d", 5, ((-1.0, 1.0),) * 5,
                 lambda x: torch.cos(x.sum(-1) / math.sqrt(5)) + x[:, 0] ** 2,
                 "−Δu + V u = f in the unit 5-ball, V = 10, u = cos(Σx_i/√5) + x₁²", reaction=10.0, domain=Ball(5)))



# The committor of a 2-D double well: X moves by dX = −∇U dt + √(2/β) dW, U = (x² − 1)² + 2y²;
# q(x) = P(X reaches B (a ball around the right minimum) before A (around the left one)), i.e.
# −β⁻¹Δq + ∇U·∇q = 0 in the box minus A and B, q = 0 on A, 1 on B, reflecting box faces.
# No closed form: "exact" values come from a fine finite-difference solve (pdekit.problems.reference).
COMMITTOR_BETA, COMMITTOR_SPACING = 3.0, 0.005


def _double_well_drift(x: Tensor) -> Tensor:
    return -torch.stack([4 * x[:, 0] * (x[:, 0] ** 2 - 1), 4 * x[:, 1]], -1)


_committor_cache = {}


def _committor_reference(x: Tensor) -> Tensor:
    if "interpolant" not in _committor_cache:  # computed once per process (a few seconds)
        from pdekit.problems.reference import GridInterpolant, solve_box_with_holes

        _committor_cache["interpolant"] = GridInterpolant(*solve_box_with_holes(PROBLEMS["committor-double-well-2d"],
                                                                                COMMITTOR_SPACING))
    return _committor_cache["interpolant"](x)


register(Problem("committor-double-well-2d", 2, ((-1.8, 1.8), (-1.2, 1.2)), _committor_reference,
                 f"committor of dX = −∇U dt + √(2/β) dW, U = (x² − 1)² + 2y², β = {COMMITTOR_BETA:g}: "
                 "−β⁻¹Δq + ∇U·∇q = 0, q = 0 on the ball A (−1, 0) and 1 on B (1, 0) (radius 0.3), reflecting box",
                 diffusion=1 / COMMITTOR_BETA, drift=_double_well_drift, source_fn=zero_source,
                 boundary_fn=lambda x: (x[:, 0] > 0).to(x.dtype),
                 domain=BoxWithHoles(((-1.8, 1.8), (-1.2, 1.2)), [((-1.0, 0.0), 0.3), ((1.0, 0.0), 0.3)],
                                     box_faces_reflect=True),
                 reference=f"finite differences, h = {COMMITTOR_SPACING:g} (pdekit.problems.reference)"))

def get(name: str, *, deliberate: bool = False) -> Problem:
    """The registered problem ``name``, or a problem of your own named ``module:object`` (a
    :class:`Problem` instance in your module; its name in files becomes ``module:object``, so
    whatever reads it back finds it again).

    Importing a module runs its code, so a ``module:object`` name is imported only when it was given
    deliberately: ``deliberate=True`` (typed on a command line, passed in Python) or allow-listed
    (``PDEKIT_ALLOW=module:object`` or :func:`pdekit.learning.registry.allow`), as for a network of
    your own; a name read from a checkpoint or a config file is neither.  One-line errors otherwise."""
    if isinstance(name, str) and name in PROBLEMS:
        return PROBLEMS[name]
    if not isinstance(name, str) or ":" not in name:
        raise ConfigError(f"unknown problem {name!r}; choose from {', '.join(sorted(PROBLEMS))} or name your own "
                          "as module:object")
    from pdekit.learning.registry import ENVIRONMENT_VARIABLE, allowed, import_object

    if not deliberate and name not in allowed():
        raise ConfigError(f"refusing to import problem {name!r}: name your own problem deliberately "
                          f"({ENVIRONMENT_VARIABLE}={name}, or pdekit.learning.registry.allow({name!r}))")
    problem = import_object(name, "problem")
    if not isinstance(problem, Problem):
        raise ConfigError(f"problem {name!r} is a {type(problem).__name__}, not a pdekit.problems.Problem")
    return problem if problem.name == name else replace(problem, name=name)
