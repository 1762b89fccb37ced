"""Latent Spectral Model (Wu, Hu, Luo, Wang, Long, "Solving High-Dimensional PDEs with Latent
Spectral Models", ICML 2023; reference code thuml/Latent-Spectral-Models), 2-D or 3-D.

The :class:`models.unet.UNet` backbone with a **neural spectral block** on each of its five
feature maps (the four skips and the bottleneck) before the decoder reads them.  A block
(:class:`NeuralSpectralBlock`), on a map of C channels:

1. cuts it into patches of ``patch^d`` pixels (each patch independent, moved into the batch);
2. *encoder*: ``tokens`` latent tokens per head (8 heads of C/8 channels, learned) attend to the
   patch's pixels (keys and values from a 1×1 convolution C → 2C; softmax without 1/√d scaling,
   as in the reference), with a residual;
3. *transition*: each latent channel value z is updated by a learned combination of the basis
   ``{sin(kπz/B), cos(kπz/B)}, k = 0 … B−1`` (B = ``num_basis`` = 12: 24 functions; the basis acts
   on the token values, not on space), ``z ← z + Σ_m W[c, m] φ_m(z)``, W initialised U(0, 1/C);
4. *decoder*: the pixels (queries from a 1×1 convolution C → C) attend to the tokens, with a
   residual; the patches are put back together.

The patch size is the same number of pixels at every scale (so a 64² input with patch 4 has 16²
patches at the top, 1 at the bottleneck); inputs are padded to a multiple of ``2⁴ · patch``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.unet import UNet, _layers

HEADS = 8


def spectral_basis(z: torch.Tensor, num_basis: int) -> torch.Tensor:
    """``(..., 2 · num_basis)``: ``sin(kπz/B)`` for k = 0 … B−1, then ``cos(kπz/B)``."""
    k = torch.arange(num_basis, device=z.device, dtype=z.dtype) / num_basis
    angle = math.pi * z.unsqueeze(-1) * k
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


class NeuralSpectralBlock(nn.Module):
    def __init__(self, width: int, dim: int = 2, num_basis: int = 12, tokens: int = 4, patch: int = 4):
        super().__init__()
        if tokens < 1 or num_basis < 1:
            raise ValueError(f"tokens and num_basis must be >= 1, got {tokens}, {num_basis}")
        if width % HEADS:
            raise ValueError(f"the spectral blocks split channels into {HEADS} heads: width {width} is not a multiple")
        conv = _layers(dim)[0]
        self.dim, self.patch, self.num_basis = dim, patch, num_basis
        self.weights = nn.Parameter(torch.rand(width, 2 * num_basis) / width)
        self.latent = nn.Parameter(torch.rand(HEADS, tokens, width // HEADS) / width)
        self.encoder_kv = conv(width, 2 * width, 1)
        self.decoder_q = conv(width, width, 1)

    @staticmethod
    def _attend(q, k, v):  # (b, heads, n, c): softmax over keys, unscaled as in the reference
        return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v

    def _heads(self, x):  # (b, C, n) → (b, heads, n, C/heads)
        b, c, n = x.shape
        return x.view(b, HEADS, c // HEADS, n).transpose(-1, -2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *shape = x.shape
        p, d = self.patch, self.dim
        counts = [n // p for n in shape]
        # patchify: (b, c, n1, p, n2, p, ...) → (b·n1·n2…, c, p, p, …)
        patches = x.reshape(b, c, *[v for n in counts for v in (n, p)])
        order = [0, *range(2, 2 + 2 * d, 2), 1, *range(3, 3 + 2 * d, 2)]
        patches = patches.permute(order).reshape(-1, c, *[p] * d)
        batch = patches.shape[0]
        k, v = self.encoder_kv(patches).flatten(2).chunk(2, dim=1)
        tokens = self.latent.expand(batch, -1, -1, -1)
        tokens = tokens + self._attend(tokens, self._heads(k), self._heads(v))  # (batch, heads, L, C/heads)
        z = tokens.transpose(-1, -2).reshape(batch, c, -1)  # (batch, C, L)
        z = z + torch.einsum("bclm,cm->bcl", spectral_basis(z, self.num_basis), self.weights)
        z = self._heads(z)
        q = self._heads(self.decoder_q(patches).flatten(2))
        out = self._attend(q, z, z).transpose(-1, -2).reshape(patches.shape) + patches
        # de-patchify
        out = out.reshape(b, *counts, c, *[p] * d)
        inverse = [0, d + 1, *[v for i in range(d) for v in (1 + i, d + 2 + i)]]
        return out.permute(inverse).reshape(b, c, *shape)


class LSM(UNet):
    """Latent Spectral Model operator: ``(batch, in_channels, *grid)`` → ``(batch, out_channels, *grid)``
    at any grid size.

    Args:
        in_channels, out_channels, dim: filled in by the task from the data.
        width: channels w of the first U-Net level (levels w, 2w, 4w, 8w, 8w); a multiple of 8.
            w = 16 is ~1.2 M parameters in 2-D, the reference Darcy model (w = 64) ~19 M.
        num_basis: B, the spectral basis has 2B functions (reference 12).
        tokens: latent tokens per head (reference 4).
        patch: pixels per patch side at every scale (reference 4 for 64² Navier–Stokes, 6 for
            Darcy at 85² padded to 96).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 16, dim: int = 2,
                 num_basis: int = 12, tokens: int = 4, patch: int = 4, head_width: int = 128):
        super().__init__(in_channels, out_channels, width, dim, patch, head_width)
        self.spectral = nn.ModuleList(NeuralSpectralBlock(c, dim, num_basis, tokens, patch) for c in self.skip_widths)

    def _skip_blocks(self, features):
        return [block(h) for block, h in zip(self.spectral, features)]
