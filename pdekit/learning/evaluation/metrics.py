"""Per-sample error measures shared by training, evaluation and benchmarks."""
from __future__ import annotations

import torch

from pdekit.grid import Grid
from pdekit.operators import DiffusionOperator


def relative_l2(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """‖prediction − truth‖₂ / ‖truth‖₂ per sample (all non-batch axes reduced)."""
    diff = (prediction - truth).flatten(1).norm(dim=1)
    return diff / truth.flatten(1).norm(dim=1).clamp_min(torch.finfo(truth.dtype).tiny)


def poisson_relative_residual(u: torch.Tensor, grid: Grid, a, f, bc_type, bc_value) -> torch.Tensor:
    """‖b − A u‖ / ‖b‖ of each sample's own discrete system (rebuilt from the stored arrays, in
    float64): the measure of how well a predicted ``u`` solves *its* problem.  ``grid``: one, or
    one per sample."""
    op = DiffusionOperator.from_arrays(grid, a, bc_type, bc_value)
    u64 = u.detach().to("cpu", torch.float64).reshape((-1,) + tuple(op.shape))
    b = op.rhs(torch.as_tensor(f, dtype=torch.float64).reshape(u64.shape))
    return op.relative_residual(u64, b)
