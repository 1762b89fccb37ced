"""Kronecker algebra on grids: a covariance K₁ ⊗ … ⊗ K_d over ``vec U`` (U of shape
(N₁, …, N_d), row-major) handled through its per-axis factors, never formed.

* ``mode_product(M, U, axis)``: M applied along one axis (U_xx = K₁″ K₁⁻¹ U is this with
  M = K₁″ K₁⁻¹; in 2-D, K₂'s axis is U's columns: (K₂″ K₂⁻¹ Uᵀ)ᵀ).
* ``KroneckerFactors``: per-axis Cholesky factors; ``logdet`` = Σ_d (N / N_d) log|K_d|;
  ``quadratic(U)`` = vec(U)ᵀ (⊗K_d)⁻¹ vec(U) = ⟨U, U ×₁ K₁⁻¹ ×₂ … ×_d K_d⁻¹⟩; ``solve(U)``.

Cost: O(Σ N_d³ + N Σ N_d) against O(N³) dense.
"""
from __future__ import annotations

import math

import torch


def mode_product(M: torch.Tensor, U: torch.Tensor, axis: int) -> torch.Tensor:
    """``U ×_axis M``: (M @ U along ``axis``)."""
    moved = U.movedim(axis, 0)
    out = (M @ moved.reshape(moved.shape[0], -1)).reshape(M.shape[0], *moved.shape[1:])
    return out.movedim(0, axis)


class KroneckerFactors:
    def __init__(self, factors: list[torch.Tensor], jitter: float = 1e-6):
        eye = lambda K: torch.eye(K.shape[0], dtype=K.dtype, device=K.device)  # noqa: E731
        self.matrices = [K + jitter * eye(K) for K in factors]
        self.cholesky = [torch.linalg.cholesky(K) for K in self.matrices]
        self.sizes = [K.shape[0] for K in factors]

    def logdet(self) -> torch.Tensor:
        n = math.prod(self.sizes)
        return sum((n // size) * 2 * torch.log(torch.diagonal(L)).sum() for size, L in zip(self.sizes, self.cholesky))

    def solve(self, U: torch.Tensor) -> torch.Tensor:
        """(⊗K_d)⁻¹ vec U, as a grid."""
        for axis, L in enumerate(self.cholesky):
            moved = U.movedim(axis, 0)
            flat = torch.cholesky_solve(moved.reshape(moved.shape[0], -1), L)
            U = flat.reshape(moved.shape).movedim(0, axis)
        return U

    def quadratic(self, U: torch.Tensor) -> torch.Tensor:
        return (U * self.solve(U)).sum()

    def inverse_applied(self, axis: int, M: torch.Tensor) -> torch.Tensor:
        """M K_axis⁻¹ (e.g. the derivative operator K″ K⁻¹ along one axis)."""
        return torch.cholesky_solve(M.transpose(0, 1), self.cholesky[axis]).transpose(0, 1)
