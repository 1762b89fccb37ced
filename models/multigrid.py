"""A neural multigrid preconditioner whose kernels are computed from the operator (after Lan et
al., ICML 2024, "A Neural-preconditioned Poisson Solver for Mixed Dirichlet and Neumann Boundary
Conditions", and Greenfeld et al., ICML 2019, "Learning to Optimize Multigrid PDE Solvers").

For one operator ``A`` (a :class:`~pdekit.operators.DiffusionOperator`: any mask, mixed
Dirichlet/Neumann walls, variable coefficient, 2-D or 3-D) :func:`build_hierarchy` makes, level by
level down to a few cells,

* a per-cell **prolongation** ``P_l`` (each fine cell interpolates from the 2^d nearest coarse
  cells; cell-centred bilinear weights re-weighted by ``exp(Δ)`` and rescaled, Δ and the row sum
  from the network),
* a per-cell **smoother** weight ``ω_l ∈ (0, 2)`` of l1-Jacobi (``x += ω/ℓ₁ · (b − A x)``,
  ``ℓ₁ = Σ_j |A_ij|``),
* the **Galerkin coarse operator** ``A_{l+1} = P_lᵀ A_l P_l`` (a 5^d stencil, found by probing),

where one small CNN (:class:`KernelNet`, shared by every level) computes Δ, the row sum and ω from
the level operator's own stencil (mask, walls and boundary types, coefficient), so the hierarchy
is as deep as the grid and the receptive field covers the domain at every resolution.  The
preconditioner is one symmetric V-cycle (ν pre- and ν post-sweeps, dense Cholesky on the
coarsest level): **linear in the residual, symmetric, and positive definite** (l1-Jacobi with
ω < 2 is convergent in the A-norm, so the cycle is an A-norm contraction) — valid in plain PCG
and in ``scipy.sparse.linalg.cg``.  With the network's last layer at zero (its initialisation)
it is classical geometric multigrid with Galerkin coarse operators; training adapts the
interpolation and smoothing to walls, holes and coefficient jumps.

Training (:class:`NeuralMultigrid`) is unsupervised: it minimises the V-cycle's asymptotic error
reduction ``log ‖Eᵏ z‖_A / ‖z‖_A / k`` (``E = I − B A``, random ``z``, k power steps), which bounds
the preconditioned condition number ``κ(BA) ≤ (1 + ρ) / (1 − ρ)`` — the quantity PCG's iteration
count follows — on many operators at once.  Cost per application: 2ν + 1 stencil sweeps per level.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models import layers

from pdekit import stencils
from pdekit.errors import ConfigError
from pdekit.operators import DiffusionOperator
from pdekit.learning.task import Task, check_learning_rate

OMEGA_MAX = 2.0  # l1-Jacobi is an A-norm contraction for any 0 < ω < 2


def _block_sum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sums over 2^d blocks of the last ``dim`` axes (zero-padded to even sizes)."""
    pad = []
    for n in reversed(x.shape[-dim:]):
        pad += [0, n % 2]
    lead = x.shape[:-dim]
    x = F.pad(x, pad).reshape(-1, 1, *[n + n % 2 for n in x.shape[-dim:]])
    out = layers.avg_pool(dim)(x, 2) * 2**dim
    return out.reshape(*lead, *out.shape[2:])


def _upsample(x: torch.Tensor, shape) -> torch.Tensor:
    """Copy each coarse value to its 2^d children, cropped to the fine ``shape`` (adjoint of :func:`_block_sum`)."""
    for axis in range(len(shape)):
        x = x.repeat_interleave(2, dim=x.dim() - len(shape) + axis)
    index = (slice(None),) * (x.dim() - len(shape)) + tuple(slice(0, n) for n in shape)
    return x[index]


def coarse_shape(shape) -> tuple[int, ...]:
    return tuple((n + 1) // 2 for n in shape)


def bilinear_weights(shape, device=None, dtype=torch.float64) -> torch.Tensor:
    """Cell-centred bilinear interpolation weights ``(3^d, *shape)``: fine cell ``i`` takes 3/4 of
    its parent ``i // 2`` and 1/4 of the parent's neighbour on its own side, per axis."""
    dim = len(shape)
    index = torch.meshgrid(*[torch.arange(n, device=device) for n in shape], indexing="ij")
    out = []
    for o in stencils.offsets(dim, 1):
        w = torch.ones(shape, device=device, dtype=dtype)
        for axis, step in enumerate(o):
            left = index[axis] % 2 == 0
            if step == 0:
                w = w * 0.75
            else:  # the neighbour on the child's side only
                side = left if step < 0 else ~left
                w = w * torch.where(side, 0.25, 0.0).to(dtype)
        out.append(w)
    return torch.stack(out)


def prolong(weights: torch.Tensor, coarse: torch.Tensor, shape) -> torch.Tensor:
    """``P x``: weights ``(B, 3^d, *fine)``, coarse ``(batch, *coarse)`` → ``(batch, *fine)``."""
    dim = len(shape)
    out = None
    for k, o in enumerate(stencils.offsets(dim, 1)):
        term = weights[:, k] * _upsample(stencils.shift(coarse, o, dim), shape)
        out = term if out is None else out + term
    return out


def restrict(weights: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    """``Pᵀ y``, the exact adjoint of :func:`prolong`."""
    dim = weights.dim() - 2
    out = None
    for k, o in enumerate(stencils.offsets(dim, 1)):
        term = stencils.shift(_block_sum(weights[:, k] * fine, dim), tuple(-c for c in o), dim)
        out = term if out is None else out + term
    return out


class KernelNet(nn.Module):
    """Per-cell multigrid kernels from a level operator's features (:func:`pdekit.stencils.features`):
    3^d interpolation log-weights Δ, a row-sum logit and a smoothing logit.  The last layer starts
    at zero, so the untrained hierarchy is classical (bilinear interpolation, ω = ``omega``)."""

    def __init__(self, dim: int = 2, width: int = 16, omega: float = 1.6):
        super().__init__()
        conv = layers.conv(dim)
        self.dim = dim
        self.body = nn.Sequential(conv(3 + 2 * dim, width, 3, padding=1), nn.GELU(),
                                  conv(width, width, 3, padding=1), nn.GELU())
        self.out = conv(width, 3**dim + 2, 1)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.zero_()
            self.out.bias[-1] = math.log(omega / (OMEGA_MAX - omega))

    def forward(self, features: torch.Tensor):
        raw = self.out(self.body(features))
        delta = 8.0 * torch.tanh(raw[:, :-2] / 8.0)  # bounded re-weighting keeps P well scaled
        row_sum = 2.0 * torch.sigmoid(raw[:, -2])
        omega = OMEGA_MAX * torch.sigmoid(raw[:, -1])
        return delta, row_sum, omega


class Level:
    """One level of the hierarchy: its operator (a matvec and its stencil), active cells, l1-Jacobi
    weights ``ω/ℓ₁`` and the prolongation from the next coarser level (None on the coarsest)."""

    def __init__(self, stencil, active, operator: DiffusionOperator | None = None):
        self.stencil, self.active, self.operator = stencil, active, operator
        self.shape = tuple(active.shape[1:])
        self.smoother = None
        self.prolongation = None
        self.cholesky = None

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """The finest level applies the exact (2d+1)-point operator, coarser ones their stencils."""
        return _each_system(self.operator, x) if self.operator is not None else stencils.apply(self.stencil, x)


def _each_system(op: DiffusionOperator, x: torch.Tensor) -> torch.Tensor:
    """``op`` on fields with extra leading axes ``(…, batch, *grid)``."""
    if x.dim() == op.ndim + 1:
        return op(x)
    if op.batch_size == 1:
        return op(x.reshape(-1, *op.shape)).reshape(x.shape)
    return torch.stack([_each_system(op, part) for part in x])


def _coarsest_factor(stencil: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Cholesky factor (float64) of the coarsest operator.  A cell whose Galerkin row vanished (a
    learned row sum near 0) is treated as inactive, and a relative shift of 1e-12 keeps a
    float32-built Galerkin product factorable; both leave an SPD preconditioner."""
    stencil = stencil.double()
    diag = stencils.diagonal(stencil)
    scale = diag.flatten(1).abs().amax(1).clamp_min(1e-300).view((-1,) + (1,) * (diag.dim() - 1))
    usable = (active & (diag > 1e-10 * scale)).flatten(1)
    matrix = stencils.dense(stencil) * (usable.unsqueeze(-1) & usable.unsqueeze(-2))  # rows and columns
    matrix = matrix + torch.diag_embed((~usable).to(matrix.dtype))  # identity on the unused cells
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    return torch.linalg.cholesky(matrix + 1e-12 * scale.flatten(1).unsqueeze(-1) * eye)


def build_hierarchy(op: DiffusionOperator, net: KernelNet, *, max_coarse: int = 64, dtype=torch.float64,
                    device=None) -> list[Level]:
    """The multigrid hierarchy of ``op``'s systems (differentiable in the network's weights)."""
    device = torch.device(device) if device is not None else next(net.parameters()).device
    net_dtype = next(net.parameters()).dtype
    batch, shape = op.batch_size, tuple(op.shape)
    active = torch.as_tensor(op.mask, device=device)
    stencil = stencils.probe(lambda x: _each_system(op, x), shape, 1, batch, device=device, dtype=dtype)
    levels = [Level(stencil, active, op)]
    while True:
        level = levels[-1]
        if math.prod(level.shape) <= max_coarse or max(level.shape) <= 2:  # solved directly: no kernels
            level.cholesky = _coarsest_factor(level.stencil, level.active)
            return levels
        l1 = torch.where(level.active, level.stencil.abs().sum(1), torch.ones_like(level.stencil[:, 0]))
        feats = stencils.features(level.stencil.detach(), level.active).to(net_dtype)
        delta, row_sum, omega = net(feats)
        level.smoother = omega.to(dtype) / l1 * level.active
        cshape = coarse_shape(level.shape)
        cactive = _block_sum(level.active.to(dtype), len(shape)) > 0
        available = torch.stack([_upsample(stencils.shift(cactive.to(dtype), o, len(shape)), level.shape)
                                 for o in stencils.offsets(len(shape), 1)], 1)
        weights = bilinear_weights(level.shape, device, dtype) * torch.exp(delta.to(dtype)) * available
        weights = weights / weights.sum(1, keepdim=True).clamp_min(1e-30)
        weights = weights * (row_sum.to(dtype) * level.active).unsqueeze(1)
        level.prolongation = weights
        galerkin = lambda x, A=level.matvec, w=weights, s=level.shape: restrict(w, A(prolong(w, x, s)))  # noqa: E731
        cstencil = stencils.probe(galerkin, cshape, 2, batch, device=device, dtype=dtype)
        cstencil = 0.5 * (cstencil + stencils.transpose(cstencil))  # exact symmetry (probing rounds each side apart)
        levels.append(Level(cstencil, cactive))


def v_cycle(levels: list[Level], b: torch.Tensor, sweeps: int = 2, level: int = 0) -> torch.Tensor:
    """One symmetric V-cycle from a zero guess for ``A x = b`` (b: ``(batch, *grid)``)."""
    current = levels[level]
    if current.cholesky is not None:
        flat = b.flatten(1).unsqueeze(-1).to(current.cholesky.dtype)
        chol = current.cholesky
        if chol.shape[0] == 1 and flat.shape[0] > 1:  # one system, many right-hand sides
            x = torch.cholesky_solve(flat.squeeze(-1).T, chol[0]).T
        else:
            x = torch.cholesky_solve(flat, chol).squeeze(-1)
        return x.reshape(b.shape).to(b.dtype) * current.active
    x = current.smoother * b
    for _ in range(sweeps - 1):
        x = x + current.smoother * (b - current.matvec(x))
    coarse_rhs = restrict(current.prolongation, b - current.matvec(x))
    x = x + prolong(current.prolongation, v_cycle(levels, coarse_rhs, sweeps, level + 1), current.shape)
    for _ in range(sweeps):
        x = x + current.smoother * (b - current.matvec(x))
    return x


def energy_norm(op: DiffusionOperator, e: torch.Tensor) -> torch.Tensor:
    return (e * op(e)).flatten(1).sum(1).clamp_min(torch.finfo(e.dtype).tiny).sqrt()


def convergence_loss(op: DiffusionOperator, levels: list[Level], probes: torch.Tensor, steps: int,
                     sweeps: int) -> torch.Tensor:
    """Mean log A-norm reduction per V-cycle of ``probes`` (``(batch, *grid)``, one per system)
    over the last of ``steps`` power steps of ``E = I − B A``: the power steps leave the error in
    the cycle's slowest modes, so the loss follows the asymptotic rate (≈ its spectral radius)."""
    view = (-1,) + (1,) * op.ndim
    e = probes / energy_norm(op, probes).view(view)
    for step in range(steps):
        e = e - v_cycle(levels, op(e), sweeps)
        norm = energy_norm(op, e)
        if step < steps - 1:
            e = e / norm.view(view)
    return torch.log(norm).mean()


class NeuralMultigrid(Task):
    """Trains :class:`KernelNet` (the multigrid kernels of :func:`build_hierarchy`) without labels on
    the operators of pdekit Poisson files or saved pressure systems (``data.init_args.system:
    true``): each batch rebuilds its samples' operators, draws random errors and minimises the
    V-cycle's asymptotic error reduction (:func:`convergence_loss`).  The right-hand sides in the
    files are not used: only the operators matter.

    Args: ``width`` of the kernel network; ``sweeps`` (ν) smoothing sweeps before and after the
    coarse correction; ``omega`` the initial l1-Jacobi weight (0 < ω < 2); ``power_steps`` of the
    loss; ``max_coarse`` cells of the coarsest level (solved densely); ``lr`` (Adam).
    ``in_channels``, ``out_channels``, ``dim`` are filled in from the data module.
    """

    trained_on_residuals = True  # trained as a preconditioner (datagen --pressure-precond accepts it)

    linear_preconditioner = True  # a fixed linear SPD map for a fixed operator: plain PCG is valid
    data_pde = "poisson"  # Poisson files or saved pressure systems
    data_system = True

    def __init__(self, width: int = 16, sweeps: int = 2, omega: float = 1.6, power_steps: int = 8,
                 max_coarse: int = 64, lr: float = 1e-3, in_channels: int = 1, out_channels: int = 1, dim: int = 2,
                 optimizer: dict | None = None, lr_scheduler: dict | str | None = None):
        super().__init__(optimizer, lr_scheduler)
        check_learning_rate(lr)
        # upper bounds: every training step runs sweeps x power_steps V-cycles; beyond these a
        # step takes hours (a typo such as 1e9 hangs instead of failing)
        for name, value, low, high in (("width", width, 1, 1024), ("sweeps", sweeps, 1, 50),
                                       ("power_steps", power_steps, 1, 100), ("max_coarse", max_coarse, 1, 10**6)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"model.init_args.{name} must be an integer in {low}..{high}, got {value!r}")
        if isinstance(omega, bool) or not isinstance(omega, (int, float)) or not 0 < omega < OMEGA_MAX:
            raise ConfigError(f"model.init_args.omega must lie in (0, {OMEGA_MAX:g}) (l1-Jacobi converges "
                              f"only there), got {omega!r}")
        if dim not in (2, 3):
            raise ConfigError(f"NeuralMultigrid works on 2-D and 3-D grids, the data are {dim}-D")
        self.save_hyperparameters()
        self.net = KernelNet(dim, width, float(omega))

    def hierarchy(self, op: DiffusionOperator, dtype=torch.float64) -> list[Level]:
        return build_hierarchy(op, self.net, max_coarse=self.hparams.max_coarse, dtype=dtype, device=self.device)

    def training_loss(self, batch):
        op = self.batch_operator(batch)
        levels = self.hierarchy(op, torch.float32)
        mask = torch.as_tensor(op.mask, device=self.device, dtype=torch.float32)
        probes = torch.randn(mask.shape, device=self.device) * mask
        return convergence_loss(op, levels, probes, self.hparams.power_steps, self.hparams.sweeps)

    def preconditioner_module(self, op: DiffusionOperator) -> nn.Module:
        """One V-cycle for ``op`` (float64, kernels computed once here) as a module on
        ``(batch, 1, *grid)`` residuals."""
        with torch.no_grad():
            return VCycle(self.hierarchy(op, torch.float64), self.hparams.sweeps)


class VCycle(nn.Module):
    """A built hierarchy as a parameter-free module (residuals keep their own dtype, float64 in
    pdekit's solvers); ``.to(device)`` moves every level."""

    def __init__(self, levels: list[Level], sweeps: int):
        super().__init__()
        self.levels, self.sweeps = levels, sweeps

    def _apply(self, fn, recurse=True):
        for level in self.levels:
            for name in ("stencil", "active", "smoother", "prolongation", "cholesky"):
                value = getattr(level, name)
                if value is not None:
                    setattr(level, name, fn(value))
        return super()._apply(fn, recurse)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        dtype = self.levels[0].stencil.dtype
        return v_cycle(self.levels, r.squeeze(1).to(dtype), self.sweeps).to(r.dtype).unsqueeze(1)
