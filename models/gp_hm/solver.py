"""GP-HM: a Gaussian-process PDE solver on a collocation grid (Fang et al., "Solving High
Frequency and Multi-Scale PDEs with Gaussian Processes", ICLR 2024).

Unknowns: the solution U on a tensor grid (every grid point is a collocation point).  Prior:
vec U ~ N(0, K₁ ⊗ … ⊗ K_d), one spectral-mixture kernel per axis (:mod:`.kernels`).
Derivatives by the GP conditional mean, per axis: U_xx = K₁″ K₁⁻¹ U.  Objective (negative log
joint, minimised with Adam in float64; reference: λ_b = 200, τ and v learned from 1):

    ½ log|K| + ½ vec(U)ᵀ K⁻¹ vec(U)
      − λ_b [½ N_b log τ − ½ τ ‖U_b − g‖²]      (boundary points: the grid's faces)
      − [½ N_c log v − ½ v ‖R(U)‖²]            (R: the problem's residual at every grid point)

with the Kronecker algebra of :mod:`.kronecker` (never the full N×N matrix).  Prediction at any
point is the conditional mean k(x, X) K⁻¹ vec U.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.gp_hm.kernels import SpectralMixtureKernel
from models.gp_hm.kronecker import KroneckerFactors, mode_product
from pdekit.problems import Problem


MAX_POINTS_PER_AXIS = 8192
MAX_GRID_POINTS = 2**26


class GridGP(nn.Module):
    """Args:
        problem: a :class:`pdekit.problems.Problem` (a box domain).
        points: collocation points per axis (an int for all axes, or one per axis).
        kernel: ``stm`` | ``gm`` (GP-HM) or ``se`` | ``matern`` (plain GP baselines).
        components: Q per axis (reference 30); max_frequency: μ initialised on linspace(0, 1, Q)·this.
        boundary_weight: λ_b (reference 200); jitter: added to each K_d's diagonal (reference 1e-6).
    """

    def __init__(self, problem: Problem, points, kernel: str = "stm", components: int = 30,
                 max_frequency: float = 20.0, boundary_weight: float = 200.0, jitter: float = 1e-6):
        super().__init__()
        if not problem.is_box:
            raise ValueError(f"problem {problem.name}: GP-HM needs a box domain (its unknowns are a tensor grid), "
                             f"not {problem.domain}")
        sizes = [int(points)] * problem.dim if isinstance(points, (int, float)) else [int(p) for p in points]
        if len(sizes) != problem.dim or min(sizes) < 3:
            raise ValueError(f"points: need {problem.dim} sizes >= 3, got {points}")
        # each axis holds dense n x n kernel matrices and the grid holds prod(n) values: bounded so a
        # typo (points: 1e8) is refused instead of allocating tens of GB
        if max(sizes) > MAX_POINTS_PER_AXIS or math.prod(sizes) > MAX_GRID_POINTS:
            raise ValueError(f"points: at most {MAX_POINTS_PER_AXIS} per axis and {MAX_GRID_POINTS} in all, "
                             f"got {sizes}")
        for name, value, ok in (("jitter", jitter, lambda v: v >= 0), ("boundary_weight", boundary_weight,
                                                                      lambda v: v >= 0),
                                ("max_frequency", max_frequency, lambda v: v > 0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
                raise ValueError(f"{name} must be a finite number {'> 0' if name == 'max_frequency' else '>= 0'}, "
                                 f"got {value!r}")
        if isinstance(components, bool) or not isinstance(components, int) or components < 1:
            raise ValueError(f"components must be an integer >= 1, got {components!r}")
        self.problem, self.sizes = problem, sizes
        self.boundary_weight, self.jitter = float(boundary_weight), float(jitter)
        for axis, ((lo, hi), n) in enumerate(zip(problem.bounds, sizes)):
            self.register_buffer(f"axis{axis}", torch.linspace(lo, hi, n, dtype=torch.float64))
        self.kernels = nn.ModuleList(SpectralMixtureKernel(kernel, components, max_frequency) for _ in sizes)
        self.u = nn.Parameter(torch.zeros(sizes, dtype=torch.float64))
        self.log_tau = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.log_v = nn.Parameter(torch.zeros((), dtype=torch.float64))
        points_ = self.grid_points()
        boundary = torch.zeros(sizes, dtype=torch.bool)
        for axis, n in enumerate(sizes):
            index = [slice(None)] * len(sizes)
            for end in (0, n - 1):
                index[axis] = end
                boundary[tuple(index)] = True
        self.register_buffer("boundary", boundary)
        self.register_buffer("f", problem.source(points_).reshape(sizes))
        self.register_buffer("g", problem.boundary(points_[boundary.flatten()]))

    def axes(self) -> list[torch.Tensor]:
        return [getattr(self, f"axis{i}") for i in range(len(self.sizes))]

    def grid_points(self) -> torch.Tensor:
        return torch.stack(torch.meshgrid(*self.axes(), indexing="ij"), -1).reshape(-1, len(self.sizes))

    def _factors(self):
        # the collocation axes are equally spaced: Toeplitz kernel matrices (kernels.on_uniform_grid)
        pairs = [kernel.on_uniform_grid(x) for kernel, x in zip(self.kernels, self.axes())]
        return KroneckerFactors([K for K, _ in pairs], self.jitter), [K2 for _, K2 in pairs]

    def laplacian(self, factors=None, second=None) -> torch.Tensor:
        """ΔU on the grid by the conditional mean, axis by axis."""
        if factors is None:
            factors, second = self._factors()
        return sum(mode_product(factors.inverse_applied(axis, K2), self.u, axis) for axis, K2 in enumerate(second))

    def loss(self) -> dict:
        factors, second = self._factors()
        prior = 0.5 * factors.logdet() + 0.5 * factors.quadratic(self.u)
        tau, v = self.log_tau.exp(), self.log_v.exp()
        boundary_error = (self.u[self.boundary] - self.g).pow(2).sum()
        n_b = int(self.boundary.sum())
        boundary = -self.boundary_weight * (0.5 * n_b * self.log_tau - 0.5 * tau * boundary_error)
        residual = self.problem.residual(self.u, self.laplacian(factors, second), self.f)
        pde = -(0.5 * residual.numel() * self.log_v - 0.5 * v * residual.pow(2).sum())
        return {"loss": prior + boundary + pde, "prior": prior.detach(), "boundary_mse": (boundary_error / n_b).detach(),
                "residual_mse": residual.pow(2).mean().detach()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """The conditional mean at points ``x`` (n, dim), in chunks of points (the per-point cross
        kernels hold chunk × N × Q numbers)."""
        factors, _ = self._factors()
        alpha = factors.solve(self.u)  # (⊗K)⁻¹ vec U as a grid
        x = x.to(alpha)
        parts = []
        for block in x.split(chunk):
            out = None
            for axis, (kernel, grid_axis) in enumerate(zip(self.kernels, self.axes())):
                cross = kernel(block[:, axis], grid_axis)  # (n, N_axis)
                out = (cross @ alpha.reshape(alpha.shape[0], -1)).reshape(len(block), *alpha.shape[1:]) if out is None \
                    else torch.einsum("ij...,ij->i...", out, cross)
            parts.append(out)
        return torch.cat(parts)

    @torch.no_grad()
    def predict_grid(self, axes: list[torch.Tensor]) -> torch.Tensor:
        """The conditional mean on the tensor grid ``axes`` (one 1-D tensor per axis):
        K₁(x*, X) ⋯ applied along each axis to (⊗K)⁻¹ vec U — never a point-by-grid matrix."""
        factors, _ = self._factors()
        out = factors.solve(self.u)
        for axis, (kernel, grid_axis, test_axis) in enumerate(zip(self.kernels, self.axes(), axes)):
            out = mode_product(kernel(test_axis.to(out), grid_axis), out, axis)
        return out

    @torch.no_grad()
    def relative_error(self, points: int = 300) -> float:
        """Relative L2 error against the exact solution on a uniform test grid (``points`` per axis)."""
        axes = [torch.linspace(lo, hi, points, dtype=torch.float64, device=self.u.device) for lo, hi in self.problem.bounds]
        x = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
        exact = self.problem.solution(x)
        return float((self.predict_grid(axes).reshape(-1) - exact).norm() / exact.norm())

    def frequencies(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(μ_q, w_q) per axis, to see which frequencies the kernel kept."""
        return [(k.frequency.detach().clone(), k.weights().detach().clone()) for k in self.kernels]


def fit(gp: GridGP, steps: int, lr: float = 0.01, progress=None) -> list[float]:
    """Adam on the negative log joint; returns the loss history."""
    optimiser = torch.optim.Adam(gp.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = gp.loss()["loss"]
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
        if progress is not None:
            progress()
    if not math.isfinite(history[-1]):
        raise FloatingPointError("the GP objective became non-finite; lower lr or raise jitter")
    return history
