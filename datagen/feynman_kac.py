"""Monte Carlo Feynman–Kac labels: u(x) at chosen points of an analytic problem
(:mod:`pdekit.problems`), each with its standard error, from random walks — no grid, any dimension.

For −a Δu − b·∇u + V u = f in Ω, u = g on ∂Ω (constant a > 0 and V ≥ 0), with X the diffusion
dX = b dt + √(2a) dW started at x and τ its exit time,

    u(x) = E[ g(X_τ) e^{−V τ} + ∫₀^τ f(X_t) e^{−V t} dt ].

Two samplers, batched in torch over points × paths (CPU or CUDA):

* **walk-on-spheres** (Muller 1956; the source term by sampling the ball's Green's function,
  Sawhney & Crane 2020): jump to a uniform point of the largest ball around the walker that fits
  in Ω (radius = the domain's exact inside distance) until within ``epsilon`` of the boundary, then
  take g at the nearest boundary point.  No time step, so no time-step bias (only O(ε)).  For V > 0
  pdekit uses the *screened (Yukawa) Green's function*: the boundary term of each ball is weighted
  by E[e^{−V τ_ball}] = 1/ψ, ψ = Γ(ν+1)(z/2)^{−ν} I_ν(z), z = R√(V/a), ν = d/2 − 1, and the source
  sample (drawn from the Laplace Green's function) by G_V/G_0.  No drift (b = 0).
* **Euler–Maruyama**: time steps of the SDE with exit detection and the e^{−V t} weight; handles
  a drift; biased by O(√dt) at the exit (the general but biased baseline).

Every point draws from its own random stream (``torch.Generator`` seeded with its seed), so a
label does not depend on which other points share its batch.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from pdekit.errors import ConfigError
from pdekit.problems import Problem

SAMPLERS = ("walk-on-spheres", "euler-maruyama")


def _generators(seeds, device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def _draw(generators, paths: int, shape, kind="normal", device="cpu") -> torch.Tensor:
    """One draw per walker, point by point from each point's stream: (points·paths, *shape)."""
    fn = torch.randn if kind == "normal" else torch.rand
    return torch.cat([fn(paths, *shape, generator=g, dtype=torch.float64, device=device) for g in generators])


def _directions(generators, paths, dim, device):
    z = _draw(generators, paths, (dim,), device=device)
    return z / z.norm(dim=-1, keepdim=True)


def green_radius(u: torch.Tensor, dim: int) -> torch.Tensor:
    """Inverse CDF of the radius ``s = |y − x|/R`` of a point y drawn from the Laplace Green's
    function of the ball (density ∝ s log(1/s) in 2-D, ∝ s − s^{d−1} for d ≥ 3), by bisection."""
    if dim == 2:
        cdf = lambda s: s**2 * (1 - 2 * torch.log(s.clamp_min(1e-300)))  # noqa: E731
    elif dim >= 3:
        cdf = lambda s: (s**2 / 2 - s**dim / dim) / (0.5 - 1.0 / dim)  # noqa: E731
    else:
        raise ConfigError("walk-on-spheres needs dimension >= 2 (in 1-D the exit point is one of two ends)")
    lo, hi = torch.zeros_like(u), torch.ones_like(u)
    for _ in range(52):
        mid = (lo + hi) / 2
        below = cdf(mid) < u
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


def _laplace_green(r: np.ndarray, radius: np.ndarray, dim: int) -> np.ndarray:
    if dim == 2:
        return np.log(radius / r) / (2 * math.pi)
    sphere = 2 * math.pi ** (dim / 2) / math.gamma(dim / 2)
    return (r ** (2 - dim) - radius ** (2 - dim)) / ((dim - 2) * sphere)


def screened_weights(r: torch.Tensor, radius: torch.Tensor, dim: int, screening: float):
    """(G_σ/G_0 at distance r in a ball of radius R, 1/ψ(R)) for −Δ + σ, σ = ``screening``."""
    from scipy.special import iv, kv

    nu, k = dim / 2 - 1, math.sqrt(screening)
    r_, R_ = r.cpu().numpy(), radius.cpu().numpy()
    z, zr = k * R_, k * np.maximum(r_, 1e-300)
    phi = lambda rr, zz: (k / rr) ** nu * kv(nu, zz) / (2 * math.pi) ** (dim / 2)  # noqa: E731  free space
    regular = lambda rr, zz: rr ** (-nu) * iv(nu, zz)  # noqa: E731  the homogeneous solution regular at 0
    green = phi(np.maximum(r_, 1e-300), zr) - phi(R_, z) * regular(np.maximum(r_, 1e-300), zr) / regular(R_, z)
    ratio = green / _laplace_green(np.maximum(r_, 1e-300), R_, dim)
    survival = 1.0 / (math.gamma(nu + 1) * (z / 2) ** (-nu) * iv(nu, z))
    ratio, survival = np.nan_to_num(ratio, nan=1.0), np.nan_to_num(survival, nan=1.0)
    return torch.as_tensor(ratio).to(r), torch.as_tensor(survival).to(r)


def walk_on_spheres(problem: Problem, points: torch.Tensor, paths: int, seeds, epsilon: float = 1e-4,
                    max_steps: int = 100_000) -> dict:
    """Per-path estimates (points, paths) by walk-on-spheres, and the mean number of jumps."""
    if problem.drift is not None:
        raise ConfigError(f"walk-on-spheres cannot follow the drift of {problem.name}; use --sampler euler-maruyama")
    device, dim, n = points.device, problem.dim, len(points)
    generators = _generators(seeds, device)
    a, sigma = problem.diffusion, problem.reaction / problem.diffusion
    x = points.to(torch.float64).repeat_interleave(paths, 0)
    total = torch.zeros(len(x), dtype=torch.float64, device=device)
    weight = torch.ones_like(total)
    active = torch.ones(len(x), dtype=torch.bool, device=device)
    steps = torch.zeros(len(x), dtype=torch.float64, device=device)
    has_source = problem.has_source
    for _ in range(max_steps):
        # every walker draws each step (its stream stays aligned however the others fare)
        jump = _directions(generators, paths, dim, device)
        inner = _directions(generators, paths, dim, device) if has_source else None
        radius_u = _draw(generators, paths, (), "uniform", device) if has_source else None
        radius = (-problem.signed_distance(x)).clamp_min(0)
        done = active & (radius < epsilon)
        if done.any():
            total[done] += weight[done] * problem.boundary(problem.domain.project(x[done]))
            active &= ~done
        if not active.any():
            break
        idx = active.nonzero()[:, 0]
        R = radius[idx]
        survival = None
        if has_source:
            s = green_radius(radius_u[idx], dim)
            y = x[idx] + (R * s)[:, None] * inner[idx]
            contribution = R**2 / (2 * dim) * problem.source(y) / a
            if sigma > 0:
                ratio, survival = screened_weights(R * s, R, dim, sigma)
                contribution = contribution * ratio
            total[idx] += weight[idx] * contribution
        if sigma > 0:
            weight[idx] *= survival if survival is not None else screened_weights(R, R, dim, sigma)[1]
        x[idx] = x[idx] + R[:, None] * jump[idx]
        steps[idx] += 1
    else:
        raise RuntimeError(f"walk-on-spheres: {int(active.sum())} walks still inside after {max_steps} jumps")
    return {"estimates": total.reshape(n, paths), "steps": steps.reshape(n, paths).mean(1)}


MAX_STEPS = 1_000_000  # Euler–Maruyama steps per path at most


def euler_maruyama(problem: Problem, points: torch.Tensor, paths: int, seeds, dt: float = 1e-4,
                   max_steps: int | None = None) -> dict:
    """Per-path estimates (points, paths) by Euler–Maruyama, and the mean number of time steps.
    On a domain whose outer box faces reflect (committor problems) a walker crossing one is mirrored."""
    device, dim, n = points.device, problem.dim, len(points)
    generators = _generators(seeds, device)
    a, V = problem.diffusion, problem.reaction
    x = points.to(torch.float64).repeat_interleave(paths, 0)
    total = torch.zeros(len(x), dtype=torch.float64, device=device)
    weight = torch.ones_like(total)
    active = torch.ones(len(x), dtype=torch.bool, device=device)
    steps = torch.zeros_like(total)
    noise_scale = math.sqrt(2 * a * dt)
    domain = problem.domain
    for _ in range(MAX_STEPS if max_steps is None else max_steps):
        noise = _draw(generators, paths, (dim,), device=device)
        idx = active.nonzero()[:, 0]
        xi = x[idx]
        total[idx] += weight[idx] * problem.source(xi) * dt  # left-point rule
        step = noise_scale * noise[idx]
        drift = problem.drift_at(xi)
        if drift is not None:
            step = step + drift * dt
        xi = xi + step
        if domain.box_faces_reflect:
            xi = domain.reflect_on_box(xi)
        weight[idx] *= math.exp(-V * dt)
        x[idx] = xi
        steps[idx] += 1
        out = problem.signed_distance(xi) >= 0
        if out.any():
            leaving = idx[out]
            total[leaving] += weight[leaving] * problem.boundary(domain.project(x[leaving]))
            active[leaving] = False
        if not active.any():
            break
    else:
        raise RuntimeError(f"Euler–Maruyama: {int(active.sum())} walks still inside after {max_steps} steps")
    return {"estimates": total.reshape(n, paths), "steps": steps.reshape(n, paths).mean(1)}


def labels(problem: Problem, points: torch.Tensor, sampler: str = "walk-on-spheres", paths: int = 1000, seeds=None,
           epsilon: float = 1e-4, dt: float = 1e-4) -> dict:
    """Feynman–Kac labels at ``points`` (n, dim): value, standard error (std/√paths), mean steps
    per path and seconds per label, as numpy arrays."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if not (isinstance(paths, int) and paths >= 2):
        raise ConfigError(f"paths must be an integer >= 2, got {paths}")
    points = torch.as_tensor(points, dtype=torch.float64)
    if points.ndim != 2 or points.shape[1] != problem.dim:
        raise ConfigError(f"points must have shape (n, {problem.dim}) for {problem.name}, got {tuple(points.shape)}")
    outside = ~problem.domain.contains(points)
    if outside.any():
        k = int(outside.nonzero()[0, 0])
        raise ConfigError(f"point {k} {points[k].tolist()} is not inside the domain of {problem.name}")
    seeds = list(range(len(points))) if seeds is None else list(seeds)
    start = time.perf_counter()
    run = walk_on_spheres(problem, points, paths, seeds, epsilon=epsilon) if sampler == "walk-on-spheres" else \
        euler_maruyama(problem, points, paths, seeds, dt=dt)
    seconds = time.perf_counter() - start
    estimates = run["estimates"]
    return {"value": estimates.mean(1).cpu().numpy(), "stderr": (estimates.std(1) / math.sqrt(paths)).cpu().numpy(),
            "steps": run["steps"].cpu().numpy(), "seconds": np.full(len(points), seconds / len(points))}


GENERATOR_VERSION = "feynman-kac-1"
WALK_SEED_OFFSET = 2**63  # walks draw from seed + k + 2⁶³, the point from seed + k: independent streams


def label_samples(config: dict, indices, seeds, device: str = "cpu") -> list[dict]:
    """The runner's samples of a ``datagen feynman-kac`` run: sample k is one point, drawn uniformly
    in the domain from seed + k, with its label from ``paths`` walks."""
    from pdekit.problems import get

    problem = get(config["problem"], deliberate=True)  # the run's own command named it
    points = torch.cat([problem.domain.sample_interior(1, torch.Generator().manual_seed(int(s))) for s in seeds])
    out = labels(problem, points.to(device), config["sampler"], int(config["paths"]),
                 [int(s) + WALK_SEED_OFFSET for s in seeds], epsilon=float(config["epsilon"]), dt=float(config["dt"]))
    exact = problem.solution(points).numpy() if problem.exact is not None else np.full(len(points), np.nan)
    return [{"points": points[j].numpy(), "value": out["value"][j], "stderr": out["stderr"][j],
             "steps": out["steps"][j], "seconds": out["seconds"][j], "exact": exact[j]} for j in range(len(points))]
