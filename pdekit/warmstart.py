"""A trained solver's prediction as the initial guess of a Krylov solve (pdekit's or scipy's ``x0``).

Any checkpoint that predicts ``u`` from a Poisson problem works: NPSolver, and operator-learning
models (FNO, TFNO, U-Net, LSM) trained on ``[a, f, mask] → u``.  The guess costs one forward pass;
what it saves is the iterations from the zero guess down to the network's own error (measured in
``experiments/bench_npsolver.py``)::

    op = DiffusionOperator.from_arrays(grid, a, bc_type, bc_value)
    b = op.rhs(f)
    x0 = initial_guess("runs/npsolver_small/checkpoints/last.ckpt", op, f)
    pdekit.krylov.pcg(op, b, AMG(op), x0=x0)                        # pdekit
    scipy.sparse.linalg.cg(op.to_sparse(), op.layout().to_vectors_np(b.numpy()),
                           x0=op.layout().to_vectors_np(x0.numpy()))  # scipy (active unknowns)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pdekit.errors import ConfigError
from pdekit.operators import DiffusionOperator


def problem_batch(op: DiffusionOperator, f, signature: dict | None = None) -> dict:
    """The batch a data loader would give for ``op``'s systems with source ``f`` (what
    ``predict_fields`` reads): ``x`` (the model's input channels), ``mask``, ``a``, ``f``, ``bc_type``,
    ``bc_value``."""
    f = torch.as_tensor(f, dtype=torch.float64)
    f = f.unsqueeze(0) if f.dim() == op.ndim else f
    batch = f.shape[0]
    if op.batch_size not in (1, batch):
        raise ConfigError(f"f holds {batch} sources but the operator {op.batch_size} systems")
    interior = (slice(None),) + (slice(1, -1),) * op.ndim
    expand = lambda x: torch.as_tensor(np.broadcast_to(x, (batch,) + x.shape[1:]).copy())  # noqa: E731
    a = expand(op.coefficient[interior])
    mask = expand(op.mask)
    fields = {"a": a, "f": f, "mask": mask.to(torch.float64)}
    signature = signature or {}
    inputs, logs = signature.get("inputs", ["a", "f", "mask"]), signature.get("log_inputs", ["a"])
    unknown = [k for k in inputs if k not in fields]
    if unknown:
        raise ConfigError(f"the model reads input field(s) {unknown}, which a Poisson problem does not define")
    x = torch.stack([torch.log10(fields[k]) if k in logs else fields[k] for k in inputs], dim=1).float()
    return {"x": x, "mask": mask, "a": a, "f": f, "bc_type": expand(op.bc_type), "bc_value": expand(op.bc_value)}


def initial_guess(solver, op: DiffusionOperator, f, *, device=None, energy_scaling: bool = True) -> torch.Tensor:
    """The trained ``solver``'s (a checkpoint path, or a loaded task) prediction of ``u`` for
    ``op``'s systems with source ``f`` (shape ``op.shape`` or ``(batch, *op.shape)``), as float64
    on ``f``'s device, zero at inactive nodes: pass it as ``x0``.

    ``energy_scaling`` (default) multiplies each guess ``g`` by ``α = gᵀb / gᵀAg``, the multiple of
    ``g`` closest to the solution in the energy norm that CG minimises (one operator application):
    the guess is then never worse than the zero guess in that norm.  A network's error has
    high-frequency parts, so its residual can exceed ``‖b‖`` even when its error is small."""
    if isinstance(solver, (str, Path)):
        from pdekit.checkpoints import load_task

        solver, _ = load_task(solver)
    if not hasattr(solver, "predict_fields"):
        raise ConfigError(f"{type(solver).__name__} does not predict solutions from a problem")
    signature = getattr(solver, "data_signature", None) or {}
    if signature.get("timeseries"):
        raise ConfigError("a time-series model does not predict a Poisson solution")
    if signature.get("dim") not in (None, op.ndim):
        raise ConfigError(f"the model was trained on {signature['dim']}-D data; the operator is {op.ndim}-D")
    shape = tuple(torch.as_tensor(f).shape)
    if shape[-op.ndim:] != tuple(op.shape) or len(shape) not in (op.ndim, op.ndim + 1) or \
            (len(shape) == op.ndim + 1 and op.batch_size > 1 and shape[0] != op.batch_size):
        raise ValueError(f"f has shape {shape}; the operator needs {tuple(op.shape)} or (batch, *{tuple(op.shape)})"
                         + (f" with batch {op.batch_size}" if op.batch_size > 1 else ""))
    single = torch.as_tensor(f).dim() == op.ndim
    out_device = f.device if isinstance(f, torch.Tensor) else torch.device("cpu")
    batch = problem_batch(op, f, signature)
    if device is not None:
        solver = solver.to(device)
    was_training = solver.training
    solver.eval()
    try:
        with torch.no_grad():
            u = solver.predict_fields(batch, op.grid)[:, 0]
    finally:
        solver.train(was_training)
    u = u.to(out_device, torch.float64) * torch.as_tensor(batch["mask"], device=out_device)
    if energy_scaling:
        b = op.rhs(batch["f"].to(out_device), compatibility="project")
        gb, gag = (u * b).flatten(1).sum(1), (u * op(u)).flatten(1).sum(1)
        alpha = torch.where(gag > 0, gb / torch.where(gag > 0, gag, torch.ones_like(gag)), torch.zeros_like(gag))
        u = u * alpha.view((-1,) + (1,) * op.ndim)
    return u[0] if single else u
