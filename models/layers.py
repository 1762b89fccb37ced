"""What pdekit's networks share: layers chosen by the grid's dimension, the MLP and grid coordinates.

A network written for 2-D and 3-D grids asks for its layers here (``conv(dim)``, ``avg_pool(dim)``,
...) instead of branching on the dimension itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _pick(table: dict, dim: int, supported=(1, 2, 3)):
    if dim not in supported or dim not in table:
        raise ValueError(f"dim must be one of {', '.join(map(str, supported))}, got {dim}")
    return table[dim]


def conv(dim: int) -> type[nn.Module]:
    """``nn.Conv{dim}d``."""
    return _pick(_CONV, dim)


def batch_norm(dim: int) -> type[nn.Module]:
    """``nn.BatchNorm{dim}d``."""
    return _pick(_BATCH_NORM, dim)


def max_pool(dim: int) -> type[nn.Module]:
    """``nn.MaxPool{dim}d``."""
    return _pick(_MAX_POOL, dim)


def avg_pool(dim: int):
    """``torch.nn.functional.avg_pool{dim}d``."""
    return _pick(_AVG_POOL, dim)


def linear_mode(dim: int) -> str:
    """The ``F.interpolate`` mode of (multi)linear interpolation in ``dim`` dimensions."""
    return _pick(_LINEAR_MODE, dim)


def mlp(inp: int, hidden: int, out: int, activation: type[nn.Module] = nn.GELU) -> nn.Sequential:
    """Linear → activation → linear."""
    return nn.Sequential(nn.Linear(inp, hidden), activation(), nn.Linear(hidden, out))


def grid_coordinates(shape, like: torch.Tensor) -> torch.Tensor:
    """``(1, dim, *shape)`` node coordinates in [0, 1] along each axis."""
    axes = [torch.linspace(0, 1, n, device=like.device, dtype=like.dtype) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))[None]
