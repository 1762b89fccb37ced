"""Trained solvers in numerical code: :func:`load` a checkpoint as a preconditioner, or use its
prediction as an initial guess (:func:`initial_guess`).

A trained solver's prediction as the initial guess of a Krylov solve (pdekit's or scipy's ``x0``).

Any checkpoint that predicts ``u`` from a Poisson problem works: NPSolver, and operator-learning
models (FNO, TFNO, U-Net, LSM) trained on ``[a, f, mask] → u``.  The guess costs one forward pass;
what it saves is the iterations from the zero guess down to the network's own error (measured in
``experiments/benchmarks/bench_npsolver.py``)::

    op = DiffusionOperator.from_arrays(grid, a, bc_type, bc_value)
    b = op.rhs(f)
    x0 = initial_guess("runs/npsolver_small/checkpoints/last.ckpt", op, f)
    pdekit.krylov.pcg(op, b, AMG(op), x0=x0)                        # pdekit
    scipy.sparse.linalg.cg(op.to_sparse(), op.layout().to_vectors_np(b.numpy()),
                           x0=op.layout().to_vectors_np(x0.numpy()))  # scipy (active unknowns)
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from pdekit.errors import ConfigError
from pdekit.operators import DiffusionOperator
from pdekit.precond import AMG, ModulePreconditioner, check_spd_matrix


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
    expand = lambda x: torch.as_tensor(np.broadcast_to(x, (batch,) + x.shape[1:]).copy())
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
        from pdekit.learning.checkpoints import load_task

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


_ALGEBRAIC_TASKS: dict = {}  # (path, mtime, size, inode) -> loaded learned-AMG task: a setup per system reads it once


def _load_task(checkpoint):
    """:func:`~pdekit.learning.checkpoints.load_task`, remembering a learned AMG (a pure function of its
    weights) while its file is unchanged: a solver that builds one preconditioner per system (a time
    loop, a datagen run) then pays the checkpoint read once, not per system."""
    from pdekit.learning.checkpoints import load_task

    try:
        stat = Path(checkpoint).stat()
        key = (str(Path(checkpoint).resolve()), stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except OSError:
        key = None  # load_task says what is wrong with the path
    if key in _ALGEBRAIC_TASKS:
        return _ALGEBRAIC_TASKS[key]
    loaded = load_task(checkpoint)
    if key is not None and getattr(loaded[0], "algebraic_preconditioner", False):
        if len(_ALGEBRAIC_TASKS) >= 4:
            _ALGEBRAIC_TASKS.pop(next(iter(_ALGEBRAIC_TASKS)))
        _ALGEBRAIC_TASKS[key] = loaded
    return loaded


def load(checkpoint, A, *, device=None, smoothing: int = 0, index: int | None = None, correction: bool = True):
    """A trained solver from a pdekit checkpoint (read with ``weights_only=True``) as a
    preconditioner for ``A``: a :class:`DiffusionOperator`, or — for the learned algebraic
    multigrid (:class:`models.learned_amg.LearnedAMG`), which needs only a matrix — any
    ``scipy.sparse`` SPD matrix (``index`` picks one system of a batched operator).  The learned
    AMG comes back as a :class:`pdekit.precond.AMG` whose hierarchy it built (linear, SPD; its cycle
    is pyamg's, on CPU); ``correction=False`` leaves its network out of the setup (the learned strength
    threshold alone: the same iterations within one on the benchmark, half the setup time).  The
    result follows the
    Preconditioner protocol: ``M(r)`` in pdekit's solvers, ``M.as_linear_operator()`` in
    ``scipy.sparse.linalg``.  A network is not a fixed linear map (``M.linear`` is False): use it
    with :func:`pdekit.krylov.fcg` or :func:`pdekit.krylov.conjugate_directions`, not plain PCG.
    The neural multigrid (:class:`models.multigrid.NeuralMultigrid`) is: linear, symmetric and
    positive definite for its operator (``M.linear`` is True), so plain PCG and
    ``scipy.sparse.linalg.cg`` are valid with it.
    ``smoothing``: Jacobi sweeps after the network (see :class:`ModulePreconditioner`)."""
    from pdekit.learning.checkpoints import CheckpointError

    if sp.issparse(A):
        check_spd_matrix(A)  # bad input answers before the checkpoint is read
    elif not isinstance(A, DiffusionOperator):
        raise TypeError(f"load() needs the DiffusionOperator whose residuals the model will see (or, for a learned "
                        f"algebraic multigrid, a scipy.sparse matrix), got {type(A).__name__}")
    task, info = _load_task(checkpoint)
    if getattr(task, "algebraic_preconditioner", False):
        return AMG(A, setup=functools.partial(task.hierarchy, correction=correction), index=index)
    if sp.issparse(A):
        raise CheckpointError(f"{checkpoint} holds a {info['task']}, which needs a DiffusionOperator, not a "
                              "matrix (only a learned algebraic multigrid works from a matrix alone)")
    if A.batch_size > 1 and not all(np.array_equal(A.coefficient[0], A.coefficient[i]) and
                                    np.array_equal(A.bc_type[0], A.bc_type[i]) for i in range(1, A.batch_size)):
        # the learned modules are built from one system's coefficient, geometry and boundary types
        raise ValueError(f"the operator holds {A.batch_size} different systems; a learned preconditioner is "
                         "built for one: load it for each system's operator (a batch of right-hand sides of one "
                         "system is fine)")
    if device is not None:
        from pdekit.resources import check_device

        device = check_device(device)
    trained_dim = (info.get("data") or {}).get("dim", info.get("hparams", {}).get("dim"))
    if trained_dim is not None and int(trained_dim) != A.grid.ndim:
        raise CheckpointError(f"{checkpoint} holds a {trained_dim}-D model; the operator is {A.grid.ndim}-D")
    if not hasattr(task, "preconditioner_module"):
        raise CheckpointError(f"{checkpoint} holds a {info['task']}, which cannot act as a preconditioner")
    device = torch.device(device) if device is not None else torch.device("cpu")
    module = task.preconditioner_module(A).to(device).eval()
    # a task whose preconditioner is a fixed linear SPD map (the neural multigrid) says so
    linear = bool(getattr(task, "linear_preconditioner", False)) and not smoothing
    return ModulePreconditioner(module, A, linear=linear, smoothing=smoothing)
