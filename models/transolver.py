"""BA-Transolver: the boundary-aware Transolver of NPSolver (KDD 2026, arXiv 2605.25786), on point
tokens of any count, in any dimension.

Tokens are points: interior tokens (the unknowns, features ``[coordinates, f, log a]``) and boundary
tokens (boundary faces, features ``[coordinates, one-hot Dirichlet/Neumann, value]``), each kind
padded to the longest sample of the batch with a boolean mask.

Physics attention (Transolver, Wu et al. ICML 2024, with the reference's boundary extension): one
shared projection of both token kinds into ``heads × dim_head``; per head, interior tokens are
softly assigned to ``slices[0]`` slices and boundary tokens to ``slices[1]`` by two separate
softmaxes with a learnable per-head temperature (initial 0.5); slice tokens are the weighted means;
the concatenated slice tokens attend to each other; only the interior slices are de-sliced back
onto the interior tokens.  Boundary tokens are encoded once and never updated (each block applies
its own LayerNorm to the same encoding).  Cost O(N·G + G²) per head, linear in the token count.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import mlp




class PhysicsAttention(nn.Module):
    def __init__(self, width: int, heads: int, dim_head: int, slices: tuple[int, int], dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.temperature = nn.Parameter(torch.full((1, heads, 1, 1), 0.5))
        self.project_x = nn.Linear(width, inner)
        self.project_fx = nn.Linear(width, inner)
        self.slice_interior = nn.Linear(dim_head, slices[0])
        self.slice_boundary = nn.Linear(dim_head, slices[1])
        for layer in (self.slice_interior, self.slice_boundary):
            nn.init.orthogonal_(layer.weight)
        self.q = nn.Linear(dim_head, dim_head, bias=False)
        self.k = nn.Linear(dim_head, dim_head, bias=False)
        self.v = nn.Linear(dim_head, dim_head, bias=False)
        self.out = nn.Sequential(nn.Linear(inner, width), nn.Dropout(dropout))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:  # (B, N, H·D) -> (B, H, N, D)
        return t.view(t.shape[0], t.shape[1], self.heads, self.dim_head).transpose(1, 2)

    def _slice(self, x, fx, project, mask):
        """Slice weights (B, H, N, G) (zero on padding) and slice tokens (B, H, G, D)."""
        weights = torch.softmax(project(x) / self.temperature.clamp_min(1e-2), dim=-1)
        weights = weights * mask[:, None, :, None].to(weights.dtype)
        tokens = torch.einsum("bhng,bhnd->bhgd", weights, fx)
        norm = weights.sum(2)[..., None]  # (B, H, G, 1)
        return weights, tokens / (norm + 1e-5)

    def forward(self, interior, interior_mask, boundary, boundary_mask):
        n = interior.shape[1]
        both = torch.cat([interior, boundary], dim=1)
        x, fx = self._heads(self.project_x(both)), self._heads(self.project_fx(both))
        w_int, z_int = self._slice(x[:, :, :n], fx[:, :, :n], self.slice_interior, interior_mask)
        _, z_bd = self._slice(x[:, :, n:], fx[:, :, n:], self.slice_boundary, boundary_mask)
        z = torch.cat([z_int, z_bd], dim=2)  # (B, H, G_i + G_b, D)
        z = F.scaled_dot_product_attention(self.q(z), self.k(z), self.v(z))
        out = torch.einsum("bhgd,bhng->bhnd", z[:, :, : z_int.shape[2]], w_int)
        return self.out(out.transpose(1, 2).reshape(interior.shape[0], n, -1))


class TransolverBlock(nn.Module):
    def __init__(self, width: int, heads: int, slices: tuple[int, int], mlp_ratio: float = 1.0, dropout: float = 0.0):
        super().__init__()
        self.norm_interior = nn.LayerNorm(width)
        self.norm_boundary = nn.LayerNorm(width)
        self.attention = PhysicsAttention(width, heads, width // heads, slices, dropout)
        self.norm_mlp = nn.LayerNorm(width)
        hidden = max(1, int(width * mlp_ratio))
        self.mlp = mlp(width, hidden, width)

    def forward(self, interior, interior_mask, boundary, boundary_mask):
        interior = interior + self.attention(self.norm_interior(interior), interior_mask,
                                             self.norm_boundary(boundary), boundary_mask)
        return interior + self.mlp(self.norm_mlp(interior))


class BATransolver(nn.Module):
    """Boundary-aware Transolver: interior features ``(B, N, interior_features)``, boundary features
    ``(B, M, boundary_features)`` with masks ``(B, N)``, ``(B, M)`` → one value per interior token
    ``(B, N)``.  Reference 2-D scale: ``layers=10, width=256, heads=8, slices=(64, 8)`` (3-D: width
    300, slices (64, 16)).  ``in_channels``/``out_channels`` are accepted for pdekit's network
    builder; the feature counts are what the model reads."""

    def __init__(self, interior_features: int = 4, boundary_features: int = 5, layers: int = 4, width: int = 64,
                 heads: int = 4, slices: list[int] | tuple[int, int] = (16, 4), mlp_ratio: float = 1.0,
                 dropout: float = 0.0, in_channels: int | None = None, out_channels: int = 1):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be a multiple of heads {heads}")
        if len(slices) != 2 or min(slices) < 1:
            raise ValueError(f"slices must be [interior, boundary] counts >= 1, got {slices}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.embed_interior = mlp(interior_features, 2 * width, width)
        self.embed_boundary = mlp(boundary_features, 2 * width, width)
        self.blocks = nn.ModuleList(TransolverBlock(width, heads, tuple(slices), mlp_ratio, dropout)
                                    for _ in range(layers))
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, out_channels))
        self.apply(self._init)
        for block in self.blocks:  # _init overwrote them: the reference keeps these orthogonal
            for layer in (block.attention.slice_interior, block.attention.slice_boundary):
                nn.init.orthogonal_(layer.weight)

    @staticmethod
    def _init(module):
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, interior, interior_mask, boundary, boundary_mask):
        h = self.embed_interior(interior)
        b = self.embed_boundary(boundary)
        for block in self.blocks:
            h = block(h, interior_mask, b, boundary_mask)
        return self.head(h).squeeze(-1)
