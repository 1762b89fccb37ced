"""Spatially varying stencils on structured grids, and the Galerkin product ``Pᵀ A P`` by probing.

A *stencil* of radius ρ on a grid of shape ``(*grid)`` holds, for every cell ``i`` and offset
``o ∈ {−ρ … ρ}^d``, the coupling ``S(i, o) = A[i, i + o]``: a tensor ``(batch, (2ρ+1)^d, *grid)``.
It is the matrix-free form of a banded operator, applied with ``(2ρ+1)^d`` shifted multiply-adds
(O(N), the same on CPU and GPU).  Multigrid coarse operators are stencils: :func:`probe`
recovers the stencil of any linear map whose couplings stay within radius ρ from ``(2ρ+1)^d``
applications to periodic colourings (each colour's cells lie ``2ρ+1`` apart, so every output cell
sees exactly one coloured cell among its couplings) — exact, differentiable, no sparse algebra.
"""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F


def offsets(dim: int, radius: int = 1) -> list[tuple[int, ...]]:
    """The offsets ``{−ρ … ρ}^d`` in stencil order (the centre is the middle entry)."""
    return list(itertools.product(range(-radius, radius + 1), repeat=dim))


def shift(x: torch.Tensor, offset, dim: int) -> torch.Tensor:
    """``y[…, i] = x[…, i + offset]`` over the last ``dim`` axes, zero outside the grid."""
    pad = []
    for o in reversed(offset):
        pad += [max(-o, 0), max(o, 0)]
    padded = F.pad(x, pad)
    lead = x.dim() - dim
    index = (slice(None),) * lead + tuple(slice(max(o, 0), max(o, 0) + n) for o, n in zip(offset, x.shape[lead:]))
    return padded[index]


def apply(stencil: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(S x)(i) = Σ_o S(i, o) x(i + o)``: stencil ``(B, K, *grid)``, x ``(B or batch, *grid)``
    (a stencil of one system applies to any number of vectors)."""
    dim = stencil.dim() - 2
    radius = _radius(stencil.shape[1], dim)
    padded = F.pad(x, [radius] * (2 * dim))  # once: every offset is then a view
    lead = x.dim() - dim
    out = None
    for k, o in enumerate(offsets(dim, radius)):
        view = padded[(slice(None),) * lead + tuple(slice(radius + c, radius + c + n) for c, n in zip(o, x.shape[lead:]))]
        term = stencil[:, k] * view
        out = term if out is None else out + term
    return out


def _radius(count: int, dim: int) -> int:
    width = round(count ** (1.0 / dim))
    if width**dim != count or width % 2 == 0:
        raise ValueError(f"a stencil has (2ρ+1)^{dim} entries per cell, got {count}")
    return (width - 1) // 2


def diagonal(stencil: torch.Tensor) -> torch.Tensor:
    return stencil[:, stencil.shape[1] // 2]


def transpose(stencil: torch.Tensor) -> torch.Tensor:
    """The stencil of Sᵀ: ``Sᵀ(i, o) = S(i + o, −o)``."""
    dim = stencil.dim() - 2
    offs = offsets(dim, _radius(stencil.shape[1], dim))
    return torch.stack([shift(stencil[:, len(offs) - 1 - k], o, dim) for k, o in enumerate(offs)], 1)


def dense(stencil: torch.Tensor) -> torch.Tensor:
    """The matrix ``(B, n, n)`` of a stencil ``(B, K, *grid)`` (n cells), column by column."""
    batch, shape = stencil.shape[0], stencil.shape[2:]
    n = math.prod(shape)
    eye = torch.eye(n, dtype=stencil.dtype, device=stencil.device)
    return torch.stack([apply(stencil, eye[j].view(1, *shape).expand(batch, *shape)).flatten(1)
                        for j in range(n)], -1)


def probe(matvec, shape, radius: int, batch: int, *, device=None, dtype=torch.float64) -> torch.Tensor:
    """The stencil ``(batch, (2ρ+1)^d, *shape)`` of a linear map whose couplings reach at most
    ``radius`` cells, from its application to the ``(2ρ+1)^d`` colourings: ``matvec`` maps
    ``(colours, batch, *shape)`` to the same shape (one call, so the work is batched)."""
    dim, period = len(shape), 2 * radius + 1
    index = torch.meshgrid(*[torch.arange(n, device=device) for n in shape], indexing="ij")
    colours = []
    for colour in itertools.product(range(period), repeat=dim):
        on = torch.ones(shape, dtype=torch.bool, device=device)
        for axis, c in enumerate(colour):
            on &= index[axis] % period == c
        colours.append(on)
    # all colours in one call: (colours, batch, *shape)
    responses = matvec(torch.stack(colours).to(dtype).unsqueeze(1).expand(-1, batch, *shape))
    responses = responses.transpose(0, 1)  # (batch, colours, *shape)
    # S(i, o) is the response to the colour of cell i + o, read at i
    colour_of = []
    for o in offsets(dim, radius):
        code = torch.zeros(shape, dtype=torch.long, device=device)
        for axis in range(dim):
            code = code * period + (index[axis] + o[axis]) % period
        colour_of.append(code)
    colour_of = torch.stack(colour_of).unsqueeze(0).expand(batch, -1, *shape)
    stencil = torch.gather(responses, 1, colour_of)
    # couplings to cells outside the grid do not exist
    inside = torch.stack([shift(torch.ones(shape, device=device, dtype=dtype), o, dim)
                          for o in offsets(dim, radius)])
    return stencil * inside


def features(stencil: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Scale-free per-cell description of a level operator ``(B, 3 + 2d, *grid)``: active, centred
    log of the diagonal, row sum / diagonal (> 0 next to Dirichlet walls), and per axis and side
    the coupling strength Σ|S(i, o)| / S(i, 0) towards that side (coefficient jumps, walls,
    Neumann faces show as asymmetries)."""
    dim = stencil.dim() - 2
    radius = _radius(stencil.shape[1], dim)
    offs = offsets(dim, radius)
    act = active.to(stencil.dtype)
    diag = diagonal(stencil)
    safe = torch.where(active, diag, torch.ones_like(diag)).clamp_min(1e-300)
    log_diag = torch.log(safe)
    mean = (log_diag * act).flatten(1).sum(1) / act.flatten(1).sum(1).clamp_min(1)
    out = [act, (log_diag - mean.view((-1,) + (1,) * dim)) * act, stencil.sum(1) / safe * act]
    for axis in range(dim):
        for side in (-1, 1):
            ks = [k for k, o in enumerate(offs) if o[axis] * side > 0]
            out.append(stencil[:, ks].abs().sum(1) / safe * act)
    return torch.stack(out, 1)
