"""U-Net operator (the backbone of the Latent Spectral Model, and its baseline), 2-D or 3-D.

Structure (thuml/Latent-Spectral-Models, ``models/LSM_2D.py``, bilinear variant): grid coordinates
in [0, 1] are appended to the input channels and lifted by a pointwise linear map to ``width``;
the field is zero-padded on the high side of each axis to a multiple of ``2⁴ · patch``; an
encoder of a double convolution and four (max-pool, double convolution) stages with widths
w, 2w, 4w, 8w, 8w; a decoder of four (×2 (bi/tri)linear upsampling, concatenation with the skip,
double convolution) stages back to w; a 1×1 convolution; the padding is cropped; a pointwise
head Linear(w → 128) → GELU → Linear(128 → out).  A double convolution is
[3^d convolution without bias → BatchNorm → ReLU] × 2.

:class:`models.lsm.LSM` is this network with a neural spectral block on every skip connection
and on the bottleneck (``_skip_blocks``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models import layers

DOWNSAMPLINGS = 4


def _layers(dim: int):
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    return layers.conv(dim), layers.batch_norm(dim), layers.max_pool(dim), layers.linear_mode(dim)


class DoubleConv(nn.Module):
    def __init__(self, dim: int, c_in: int, c_out: int, c_mid: int | None = None):
        super().__init__()
        conv, norm, _, _ = _layers(dim)
        c_mid = c_mid or c_out
        self.block = nn.Sequential(conv(c_in, c_mid, 3, padding=1, bias=False), norm(c_mid), nn.ReLU(inplace=True),
                                   conv(c_mid, c_out, 3, padding=1, bias=False), norm(c_out), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.block(x)


class Up(nn.Module):
    """×2 interpolation of the coarse features, concatenated with the skip, double convolution."""

    def __init__(self, dim: int, c_in: int, c_out: int):
        super().__init__()
        self.mode = _layers(dim)[3]
        self.conv = DoubleConv(dim, c_in, c_out, c_in // 2)

    def forward(self, coarse, skip):
        coarse = F.interpolate(coarse, size=skip.shape[2:], mode=self.mode, align_corners=True)
        return self.conv(torch.cat([skip, coarse], dim=1))


MAX_PATCH = 32


class UNet(nn.Module):
    """U-Net operator: ``(batch, in_channels, *grid)`` → ``(batch, out_channels, *grid)`` at any
    grid size (padded to a multiple of ``2⁴ · patch`` inside, cropped on the way out).

    Args:
        in_channels, out_channels: filled in by the task from the data.
        width: channels w of the first level (levels: w, 2w, 4w, 8w, 8w).
        dim: 2 or 3 (filled in by the task).
        patch: the padding multiple is ``2⁴ · patch`` (1 for the plain U-Net; the LSM's patch size).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 16, dim: int = 2, patch: int = 1,
                 head_width: int = 128):
        super().__init__()
        _, _, pool, _ = _layers(dim)
        if width < 1 or patch < 1:
            raise ValueError(f"width and patch must be >= 1, got {width}, {patch}")
        if patch > MAX_PATCH:  # inputs are padded to a multiple of 16 * patch pixels per side
            raise ValueError(f"patch must be <= {MAX_PATCH} (inputs are padded to a multiple of 16 x patch = "
                             f"{16 * patch} pixels per side), got {patch}")
        self.dim, self.patch = dim, patch
        w = width
        self.lift = nn.Linear(in_channels + dim, w)
        self.inc = DoubleConv(dim, w, w)
        widths = [w, 2 * w, 4 * w, 8 * w, 8 * w]
        self.down = nn.ModuleList(nn.Sequential(pool(2), DoubleConv(dim, widths[i], widths[i + 1]))
                                  for i in range(DOWNSAMPLINGS))
        # decoder: (coarse + skip) channels in, the next skip's width out (w at the top)
        self.up = nn.ModuleList([Up(dim, 16 * w, 4 * w), Up(dim, 8 * w, 2 * w), Up(dim, 4 * w, w), Up(dim, 2 * w, w)])
        conv = _layers(dim)[0]
        self.outc = conv(w, w, 1)
        self.head = layers.mlp(w, head_width, out_channels)
        self.skip_widths = widths

    def _skip_blocks(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return features  # the LSM processes them with neural spectral blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[2:]
        if len(shape) != self.dim:
            raise ValueError(f"{type(self).__name__} is {self.dim}-D; got input of shape {tuple(x.shape)}")
        x = torch.cat([x, layers.grid_coordinates(shape, x).expand(x.shape[0], -1, *shape)], dim=1)
        h = self.lift(x.movedim(1, -1)).movedim(-1, 1)
        multiple = 2 ** DOWNSAMPLINGS * self.patch
        pad = [(-n) % multiple for n in shape]
        if any(pad):  # one-sided zero padding (F.pad lists the last axis first)
            h = F.pad(h, [p for q in reversed(pad) for p in (0, q)])
        features = [self.inc(h)]
        for down in self.down:
            features.append(down(features[-1]))
        features = self._skip_blocks(features)
        h = features[-1]
        for up, skip in zip(self.up, reversed(features[:-1])):
            h = up(h, skip)
        h = self.outc(h)[(slice(None), slice(None), *(slice(0, n) for n in shape))]
        return self.head(h.movedim(1, -1)).movedim(-1, 1)
