"""NPSolver (KDD 2026, arXiv 2605.25786): a label-free neural Poisson solver, a BA-Transolver
(:mod:`models.transolver`) trained with PCG supervision.

**Tokens** (:func:`problem_tokens`): interior tokens are a sample's unknowns (active nodes) with
features ``[x / ℓ, f ℓ² / s, log10 a]``; boundary tokens are its boundary faces (box faces and
obstacle walls: every active node's neighbour that is a Dirichlet or Neumann node) at the
boundary point (the Dirichlet node, or the face half-way to a Neumann node) with
``[x / ℓ, 1_Dirichlet, 1_Neumann, value]`` (value ``g / s`` or flux ``q ℓ / s``).  ``ℓ`` is the box's
longest side; ``s = max(max|f| ℓ², max|g|, max|q| ℓ)`` per sample, and the network's output is
multiplied by ``s``: the prediction is exactly positively homogeneous in the data, as the solution
is, so one network serves any data scale (and the residual of a Krylov solve as a preconditioner).

**PCG supervision** (the reference's scheme 4): under ``no_grad`` in float64, K steps of
preconditioned CG on each sample's own system started from the prediction ``p_θ`` give ``p_ref``;
loss ``RMSE(p_ref − p_θ)`` with ``p_ref`` detached.  The file's ``u`` is never read for it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from pdekit.boundary import DIRICHLET, NEUMANN
from pdekit.errors import ConfigError, NonFiniteError
from pdekit.files.dataset import batch_grids
from pdekit.grid import Grid
from pdekit.krylov import pcg
from pdekit.learning.evaluation.metrics import relative_l2
from pdekit.operators import DiffusionOperator
from pdekit.precond import AMG, Jacobi
from pdekit.learning.task import Task, check_learning_rate
from pdekit.learning.tasks import build_network

LOSSES = ("pcg", "residual", "mixed", "supervised")
INNER_PRECONDITIONERS = ("jacobi", "amg", "none")


def _compact(features: torch.Tensor, keep: torch.Tensor):
    """Move each row's kept tokens to the front: ``features (B, T, F)``, ``keep (B, T)`` →
    ``(B, M, F)``, mask ``(B, M)``, source index ``(B, M)`` with ``M`` the largest count."""
    count = int(keep.sum(1).max()) if keep.numel() else 0
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :max(count, 1)]
    mask = torch.gather(keep, 1, order)
    gathered = torch.gather(features, 1, order[..., None].expand(-1, -1, features.shape[-1]))
    return gathered * mask[..., None], mask, order


def _shifted(padded: torch.Tensor, axis: int, offset: int, ndim: int) -> torch.Tensor:
    """The padded array ``(B, *(n + 2))`` seen from each interior node's neighbour ``offset`` (−1 or
    +1) along ``axis``: shape ``(B, *n)``."""
    index = [slice(None)] + [slice(1, -1)] * ndim
    size = padded.shape[axis + 1] - 2
    index[axis + 1] = slice(1 + offset, 1 + offset + size)
    return padded[tuple(index)]


def problem_tokens(grid: Grid, a: torch.Tensor, f: torch.Tensor, bc_type: torch.Tensor, bc_value: torch.Tensor):
    """Token features of a batch of Poisson problems (arrays as stored in pdekit files: ``a``,
    ``bc_type``, ``bc_value`` padded ``(B, *(n + 2))``, ``f`` ``(B, *n)``); float32 on ``f``'s device.

    ``a`` may also be given on the padded grid.  Returns a dict: ``interior (B, N, d + 2)``,
    ``interior_mask``, ``interior_index`` (flat grid position of each token), ``boundary (B, M, d + 3)``,
    ``boundary_mask``, ``solution_scale`` ``(B,)`` (float64: the unit of the network's output),
    ``active`` ``(B, *n)``."""
    grids = [grid] * f.shape[0] if isinstance(grid, Grid) else list(grid)  # or one grid per sample
    device, ndim, shape = f.device, grids[0].ndim, grids[0].shape
    f = f.to(torch.float64)
    a, bc_type, bc_value = a.to(device, torch.float64), bc_type.to(device), bc_value.to(device, torch.float64)
    interior = (slice(None),) + (slice(1, -1),) * ndim
    active = bc_type[interior] == 0
    view = (-1,) + (1,) * ndim
    spacing = torch.tensor([g.spacing for g in grids], dtype=torch.float64, device=device)  # (B, d)
    # positions in the padded box (node i at (i + 1) h), scaled by its longest side to [0, 1]
    length = ((torch.tensor(shape, dtype=torch.float64, device=device) + 1) * spacing).amax(1)  # (B,)
    index = torch.stack(torch.meshgrid(*(torch.arange(n, dtype=torch.float64, device=device) for n in shape),
                                       indexing="ij"), dim=-1)  # (*n, d)
    per_sample = (-1,) + (1,) * ndim + (ndim,)
    coords = (index + 1) * spacing.view(per_sample) / length.view(per_sample[:-1] + (1,))

    if a.shape[1:] != f.shape[1:]:  # given on the padded grid (as operators keep it)
        a = a[interior]
    log_a = torch.log10(torch.where(active, a, torch.ones_like(f)).clamp_min(1e-30))

    # per-sample data scale s: the solution is linear in (f, g, q), so u(f/s, g/s, q/s) = u/s
    zero = torch.zeros((), dtype=torch.float64, device=device)
    f_max = torch.where(active, f, zero).flatten(1).abs().amax(1) * length**2
    g_max = torch.where(bc_type == DIRICHLET, bc_value, zero).flatten(1).abs().amax(1)
    q_max = torch.where(bc_type == NEUMANN, bc_value, zero).flatten(1).abs().amax(1) * length
    scale = torch.stack([f_max, g_max, q_max]).amax(0).clamp_min(1e-30)
    # the output unit s / (d π² ā), ā the geometric mean of a: about the size of u for a smooth
    # source on the unit box, so the network's output stays O(1)
    mean_log_a = (log_a * active).flatten(1).sum(1) / active.flatten(1).sum(1).clamp_min(1)
    solution_scale = scale / (ndim * math.pi**2 * 10.0**mean_log_a)
    features = torch.cat([coords, (f * (length**2 / scale).view(view))[..., None], log_a[..., None]], dim=-1)
    inner, inner_mask, inner_index = _compact(features.flatten(1, ndim), active.flatten(1))

    faces, keep = [], []
    for axis in range(ndim):
        for offset in (-1, 1):
            kind = _shifted(bc_type, axis, offset, ndim)
            value = _shifted(bc_value, axis, offset, ndim)
            dirichlet, neumann = active & (kind == DIRICHLET), active & (kind == NEUMANN)
            # the boundary lies at the Dirichlet node, or half-way to the Neumann one
            shift = torch.where(dirichlet, 1.0, 0.5) * offset * (spacing[:, axis] / length).view(view)
            position = coords.clone()
            position[..., axis] = position[..., axis] + shift
            scaled = torch.where(dirichlet, value, value * length.view(view)) / scale.view(view)
            faces.append(torch.cat([position, dirichlet[..., None].double(), neumann[..., None].double(),
                                    scaled[..., None]], dim=-1).flatten(1, ndim))
            keep.append((dirichlet | neumann).flatten(1))
    boundary, boundary_mask, _ = _compact(torch.cat(faces, 1), torch.cat(keep, 1))
    return {"interior": inner.float(), "interior_mask": inner_mask, "interior_index": inner_index,
            "boundary": boundary.float(), "boundary_mask": boundary_mask, "solution_scale": solution_scale,
            "active": active}


def _per_sample_rmse(error: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Root mean square over each sample's active nodes."""
    count = mask.flatten(1).sum(1).clamp_min(1)
    return ((error * mask).flatten(1).pow(2).sum(1) / count).sqrt()


class _PerSystem:
    """One classical preconditioner per system of a batched operator (AMG has no batched form)."""

    def __init__(self, op: DiffusionOperator, make):
        self.parts = [make(op, i) for i in range(op.batch_size)]

    def __call__(self, r):
        return torch.stack([m(r[i]) for i, m in enumerate(self.parts)])


class NPSolver(Task):
    """Label-free neural Poisson solver (BA-Transolver + PCG supervision).

    Args:
        network, network_kwargs: the network (default ``models.transolver.BATransolver``; small CPU
            scale by default: 4 layers, width 64, 4 heads, slices [16, 4]).
        loss: ``pcg`` (default; K PCG steps from the prediction give the target), ``residual``
            (RMSE of ``b − A p``, the PINN-style baseline), ``mixed`` (pcg + ``omega`` · residual),
            ``supervised`` (RMSE against the file's ``u``, the labelled baseline).
        stop_gradient: detach the PCG target (the method); ``false`` backpropagates through the K
            steps (the ablation the paper argues against).
        pcg_steps, pcg_tol: K and the per-sample relative tolerance at which a sample stops early.
        inner: the inner preconditioner: ``jacobi`` (the reference), ``amg`` (pyamg, per sample,
            built every step on CPU) or ``none`` (CG).
        lr, weight_decay, pct_start: AdamW with a one-cycle schedule over the run (the reference:
            Adam, OneCycle, pct_start 0.1); clip gradients with ``trainer.gradient_clip_val: 1.0``.
            ``optimizer`` / ``lr_scheduler`` choose others (:mod:`pdekit.learning.task`).

    Errors in the losses are in units of each sample's data scale ``s`` (see the module doc); the
    residual term is the finite-volume residual ``(b − A p) h²/s`` (``h²`` the mean squared spacing).
    """

    data_pde = "poisson"
    data_system = True

    def __init__(self, network: str = "models.transolver.BATransolver", network_kwargs: dict | None = None,
                 loss: str = "pcg", stop_gradient: bool = True, pcg_steps: int = 40, pcg_tol: float = 1e-10,
                 inner: str = "jacobi", omega: float = 0.1, lr: float = 1e-3, weight_decay: float = 0.0,
                 pct_start: float = 0.1, dim: int = 2, in_channels: int | None = None, out_channels: int | None = None,
                 optimizer: dict | None = None, lr_scheduler: dict | str | None = None):
        super().__init__(optimizer, lr_scheduler)
        check_learning_rate(lr, weight_decay)
        if loss not in LOSSES:
            raise ConfigError(f"model.init_args.loss must be one of {list(LOSSES)}, got {loss!r}")
        if inner not in INNER_PRECONDITIONERS:
            raise ConfigError(f"model.init_args.inner must be one of {list(INNER_PRECONDITIONERS)}, got {inner!r}")
        if isinstance(pcg_steps, bool) or not isinstance(pcg_steps, int) or not 1 <= pcg_steps <= 10_000:
            # every training step runs pcg_steps inner iterations per sample: a typo must not hang
            raise ConfigError(f"model.init_args.pcg_steps must be an integer in 1..10000, got {pcg_steps!r}")
        if not (isinstance(pcg_tol, (int, float)) and 0 <= pcg_tol < 1):
            raise ConfigError(f"model.init_args.pcg_tol must be in [0, 1), got {pcg_tol!r}")
        if not (isinstance(omega, (int, float)) and math.isfinite(omega) and omega >= 0):
            raise ConfigError(f"model.init_args.omega must be a non-negative number, got {omega!r}")
        if not (isinstance(pct_start, (int, float)) and 0 < pct_start < 1):
            raise ConfigError(f"model.init_args.pct_start must be in (0, 1), got {pct_start!r}")
        self.save_hyperparameters()
        kwargs = dict(network_kwargs or {})
        kwargs.setdefault("interior_features", dim + 2)
        kwargs.setdefault("boundary_features", dim + 3)
        self.net = build_network(network, kwargs, dim + 2, 1)

    @property
    def label_free(self) -> bool:
        return self.hparams.loss != "supervised"

    # -- the solver ------------------------------------------------------------------------
    def solve(self, grid: Grid, a, f, bc_type, bc_value) -> torch.Tensor:
        """Predicted ``u`` ``(B, *grid)`` (float32, zero at inactive nodes) for stored problem arrays."""
        return self._solve_scaled(grid, a, f, bc_type, bc_value)[0]

    def _solve_scaled(self, grid, a, f, bc_type, bc_value):
        """The prediction and its per-sample unit (``(B,)``, float32)."""
        tokens = problem_tokens(grid, a, f.to(self.device), bc_type, bc_value)
        values = self.net(tokens["interior"], tokens["interior_mask"], tokens["boundary"], tokens["boundary_mask"])
        scale = tokens["solution_scale"].to(values.dtype)
        values = values * tokens["interior_mask"] * scale[:, None]
        shape = tokens["active"].shape[1:]
        flat = values.new_zeros(values.shape[0], math.prod(shape))
        flat = flat.scatter_add(1, tokens["interior_index"], values)
        return flat.view(-1, *shape) * tokens["active"], scale

    def predict_fields(self, batch: dict, grid: Grid | None = None) -> torch.Tensor:
        """``(B, 1, *grid)`` predictions for a batch of a Poisson file (read with the system arrays;
        each sample's own grid where the batch carries it, else ``grid``)."""
        return self.solve(batch_grids(batch, grid), batch["a"], batch["f"], batch["bc_type"],
                          batch["bc_value"]).unsqueeze(1)

    # -- training --------------------------------------------------------------------------
    def _inner(self, op: DiffusionOperator):
        if self.hparams.inner == "jacobi":
            return Jacobi(op)
        if self.hparams.inner == "amg":
            return _PerSystem(op, lambda o, i: AMG(o, index=i))
        return None

    def pcg_target(self, op: DiffusionOperator, b: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """K steps of the inner PCG on each sample's system from ``prediction`` (float64; stops per
        sample at ``pcg_tol``).  Detached unless ``stop_gradient`` is false."""
        x0 = prediction.to(torch.float64)
        if self.hparams.stop_gradient:
            x0 = x0.detach()
        with torch.set_grad_enabled(not self.hparams.stop_gradient and torch.is_grad_enabled()):
            result = pcg(op, b, self._inner(op), x0=x0, tol=self.hparams.pcg_tol, maxiter=self.hparams.pcg_steps,
                         on_breakdown="warn")
        return result.x

    def _system(self, batch):
        op = self.batch_operator(batch)
        b = op.rhs(batch["f"].to(self.device, torch.float64))
        if not torch.isfinite(b).all():
            raise NonFiniteError(f"NaN/Inf in the right-hand sides of samples {batch['index'][:3].tolist()}")
        return op, b

    def losses(self, batch) -> dict:
        """Per-sample loss terms of a batch (what ``loss`` combines) and the prediction."""
        op, b = self._system(batch)
        prediction, scale = self._solve_scaled(op.grids, batch["a"], batch["f"], batch["bc_type"], batch["bc_value"])
        mask = torch.as_tensor(op.mask, device=prediction.device, dtype=prediction.dtype)
        view = (-1,) + (1,) * op.ndim
        tokens_scale = scale.view(view)  # losses in the output's unit
        terms = {"prediction": prediction}
        kind = self.hparams.loss
        if kind in ("pcg", "mixed"):
            target = self.pcg_target(op, b, prediction).to(prediction.dtype)
            terms["pcg"] = _per_sample_rmse((target - prediction) / tokens_scale, mask)
        if kind in ("residual", "mixed"):
            h2 = torch.tensor([sum(h * h for h in g.spacing) / g.ndim for g in op.grids],
                              dtype=prediction.dtype, device=prediction.device).view(view)
            residual = (b - op(prediction.to(torch.float64))).to(prediction.dtype)
            terms["residual"] = _per_sample_rmse(residual * h2 / tokens_scale, mask)
        if kind == "supervised":
            u = batch["y"][:, 0].to(prediction)
            if not torch.isfinite(u).all():
                raise NonFiniteError(f"NaN/Inf in the labels u of samples {batch['index'][:3].tolist()} "
                                     "(loss: supervised reads them; the label-free losses do not)")
            terms["supervised"] = _per_sample_rmse((u - prediction) / tokens_scale, mask)
        return terms

    def _loss(self, terms) -> torch.Tensor:
        kind = self.hparams.loss
        if kind == "mixed":
            return (terms["pcg"] + self.hparams.omega * terms["residual"]).mean()
        return terms[kind].mean()

    def training_loss(self, batch):
        return self._loss(self.losses(batch))

    def non_finite_hint(self) -> str:
        return (f"loss: {self.hparams.loss}, stop_gradient: {self.hparams.stop_gradient}; lower model.init_args.lr "
                "or set trainer.gradient_clip_val")

    def evaluate(self, batch, prefix):
        op, b = self._system(batch)
        prediction = self.solve(op.grids, batch["a"], batch["f"], batch["bc_type"], batch["bc_value"])
        size = batch["f"].shape[0]
        per_sample = {"rel_l2": relative_l2(prediction.unsqueeze(1), batch["y"].to(prediction)),
                      "rel_residual": op.relative_residual(prediction.to(torch.float64), b).to(prediction)}
        self.log_per_level(prefix, per_sample, batch["level"], size)

    def predict_step(self, batch, batch_idx):
        return self.predict_fields(batch, self.grid)

    default_optimizer = "AdamW"

    def default_lr_scheduler(self, optimizer):
        total = self.run_length("step")
        if total * self.hparams.pct_start < 2:  # too short a run for a warm-up phase
            return None
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.hparams.lr, total_steps=total,
                                                        pct_start=self.hparams.pct_start)
        return {"scheduler": scheduler, "interval": "step"}

    # -- use in numerical code -------------------------------------------------------------
    def preconditioner_module(self, op: DiffusionOperator) -> nn.Module:
        """This solver as a map residual ``(batch, 1, *grid)`` → correction for ``op``: the residual
        is the source, with ``op``'s geometry, coefficient and boundary types and zero boundary values
        (the correction's boundary data is homogeneous)."""
        return _ResidualSolver(self, op)


class _ResidualSolver(nn.Module):
    def __init__(self, task: NPSolver, op: DiffusionOperator):
        super().__init__()
        self.task, self.grid = task, op.grid
        self.register_buffer("a", torch.as_tensor(op.coefficient[:1]))
        kinds = torch.as_tensor(op.bc_type[:1])
        self.register_buffer("bc_type", kinds)
        self.register_buffer("bc_value", torch.zeros(kinds.shape, dtype=torch.float64))

    def forward(self, r):  # (batch, 1, *grid)
        n = r.shape[0]
        expand = lambda t: t.expand(n, *t.shape[1:])  # noqa: E731
        u = self.task.solve(self.grid, expand(self.a), r[:, 0], expand(self.bc_type), expand(self.bc_value))
        return u.unsqueeze(1).to(r.dtype)
