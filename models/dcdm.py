"""Deep Conjugate Direction Method (Kaneda et al., ICML 2023): the network and its unsupervised
training task.  The iteration itself is :func:`pdekit.krylov.conjugate_directions`.

Network (reference design, 2D or 3D): every layer ``channels`` wide, 3^d convolutions, the first
linear and the rest ReLU in residual pairs ``h = h + relu(conv(relu(conv(h))))``; one 2× average
pool with convolutions on the coarse grid; the upsampled coarse features are added to the fine
ones; more pairs; a final 1^d linear layer.  Fully convolutional: trained at one size, it runs at
any.  Inactive cells are zero on input and output.

Loss (input is its own target): ``mean_b ||b − A (qᵀb / qᵀAq) q||²`` with ``q = f(b)``, the
residual after the optimal step along ``q`` (so the output scale does not matter).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models import layers

from pdekit.errors import NonFiniteError
from pdekit.operators import DiffusionOperator
from pdekit.learning.task import Task, check_learning_rate
from pdekit.learning.tasks import build_network


class DCDMNet(nn.Module):
    """The DCDM network.  ``fine``, ``coarse``, ``post``: convolutions (in residual pairs) before
    pooling, on the coarse grid, and after upsampling (reference 64³: 4, 6, 4 → ~97k parameters
    at 16 channels in 3D).  ``bias=False`` (pdekit's default) makes the network positively
    homogeneous, f(c r) = c f(r) for c > 0, so it is blind to the residual's scale, which changes
    with the grid size."""

    def __init__(self, dim: int = 2, channels: int = 16, fine: int = 4, coarse: int = 6, post: int = 4,
                 bias: bool = False, in_channels: int = 1, out_channels: int = 1):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"DCDMNet is 2-D or 3-D, got dim={dim}")
        if any(n % 2 for n in (fine, coarse, post)):
            raise ValueError("fine, coarse and post count convolutions in residual pairs: use even numbers")
        conv = layers.conv(dim)
        self.dim = dim
        self.inp = conv(in_channels, channels, 3, padding=1, bias=bias)
        make = lambda n: nn.ModuleList(conv(channels, channels, 3, padding=1, bias=bias) for _ in range(n))  # noqa: E731
        self.fine, self.coarse, self.post = make(fine), make(coarse), make(post)
        self.out = conv(channels, out_channels, 1, bias=bias)

    @staticmethod
    def _pairs(h, convs):
        for first, second in zip(convs[::2], convs[1::2]):
            h = h + F.relu(second(F.relu(first(h))))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine = self._pairs(self.inp(x), self.fine)
        coarse = self._pairs(layers.avg_pool(self.dim)(fine, 2, ceil_mode=True), self.coarse)
        h = fine + F.interpolate(coarse, size=fine.shape[2:], mode="nearest")
        return self.out(self._pairs(h, self.post))


def scaled_residual_loss(op: DiffusionOperator, b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``mean_b ||b − A (qᵀb / qᵀAq) q||²`` (fields ``(batch, *grid)``, inactive entries zero)."""
    Aq = op(q)
    qb = (q * b).flatten(1).sum(1)
    qAq = (q * Aq).flatten(1).sum(1).clamp_min(torch.finfo(q.dtype).tiny)
    step = (qb / qAq).view((-1,) + (1,) * (b.ndim - 1))
    return (b - step * Aq).flatten(1).pow(2).sum(1).mean()


class DCDM(Task):
    """Unsupervised DCDM training on right-hand sides from pdekit Poisson files (Ritz-vector files
    from ``datagen ritz``, ordinary Poisson datasets, or saved pressure systems): each batch
    rebuilds its samples' operators from the file (``data.init_args.system: true``), forms
    ``b = A``-system right-hand sides normalized to unit length, and minimizes the scaled residual.

    Args: network sizes as :class:`DCDMNet`; ``lr`` (Adam; reference 1e-4).  ``network`` (a class
    path, e.g. ``models.lsm.LSM`` or ``models.unet.UNet``) with ``network_kwargs`` trains another
    allow-listed network with the same loss instead (one input and one output channel; ``channels``
    … ``bias`` are then unused).  ``odd`` (default: true for such a network) makes the direction
    ``(f(r) − f(−r)) / 2``, an odd map like A⁻¹: a network with biases, coordinates or
    normalisation layers has an input-independent part f(0), useless as a search direction (an
    untrained U-Net's directions barely depend on r, and FCG stalls on them).  ``in_channels``,
    ``out_channels``, ``dim`` are filled in from the data module.
    """

    trained_on_residuals = True  # trained as a preconditioner (datagen --pressure-precond accepts it)
    data_system = True

    def __init__(self, channels: int = 16, fine: int = 4, coarse: int = 6, post: int = 4, bias: bool = False,
                 lr: float = 1e-3, in_channels: int = 1, out_channels: int = 1, dim: int = 2,
                 network: str | None = None, network_kwargs: dict | None = None, odd: bool | None = None,
                 optimizer: dict | None = None, lr_scheduler: dict | str | None = None):
        super().__init__(optimizer, lr_scheduler)
        check_learning_rate(lr)
        self.save_hyperparameters()
        self.net = DCDMNet(dim, channels, fine, coarse, post, bias) if network is None else \
            build_network(network, network_kwargs, 1, 1, dim, field_to_field=True)
        self.odd = network is not None if odd is None else bool(odd)

    def forward(self, r: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Search direction for residual fields ``(batch, *grid)``."""
        return _direction(self.net, r, mask, self.odd)

    def training_loss(self, batch):
        op = self.batch_operator(batch)
        mask = torch.as_tensor(op.mask, device=self.device, dtype=torch.float32)
        b = op.rhs(batch["f"].to(self.device, torch.float32))
        if not torch.isfinite(b).all():
            raise NonFiniteError(f"NaN/Inf in right-hand sides of samples {batch['index'][:3].tolist()}")
        b = b / b.flatten(1).norm(dim=1).clamp_min(1e-30).view((-1,) + (1,) * (b.ndim - 1))
        return scaled_residual_loss(op, b, self(b, mask))

    def preconditioner_module(self, op: DiffusionOperator) -> nn.Module:
        """The map residual ``(batch, 1, *grid)`` → direction, masked by ``op``'s active cells."""
        return _Masked(self.net, op, self.odd)


def _direction(net: nn.Module, r: torch.Tensor, mask: torch.Tensor | None, odd: bool) -> torch.Tensor:
    """``net`` on the residual scaled to unit norm per sample (as in training: a network with biases
    or normalisation layers is not blind to scale), made odd if asked, masked; fields ``(batch, *grid)``."""
    if mask is not None:
        r = r * mask
    norm = r.flatten(1).norm(dim=1).clamp_min(torch.finfo(r.dtype).tiny).view((-1,) + (1,) * (r.ndim - 1))
    r = (r / norm).unsqueeze(1)
    if odd:  # one forward pass over [r, -r]
        plus, minus = net(torch.cat([r, -r])).chunk(2)
        q = 0.5 * (plus - minus).squeeze(1) * norm
    else:
        q = net(r).squeeze(1) * norm
    return q * mask if mask is not None else q


class _Masked(nn.Module):
    def __init__(self, net, op, odd: bool):
        super().__init__()
        self.net, self.odd = net, odd
        self.register_buffer("mask", torch.as_tensor(op.mask[:1], dtype=torch.float32))

    def forward(self, r):  # (batch, 1, *grid)
        return _direction(self.net, r.squeeze(1), self.mask.to(r), self.odd).unsqueeze(1)
