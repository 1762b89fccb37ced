"""Batched Krylov solvers in torch: CG, preconditioned CG, flexible CG, the conjugate-direction
iteration of DCDM, and BiCGStab for non-symmetric systems.  One call solves a batch of systems ``A x_i = b_i`` on any device and dtype.

``A`` is a :class:`~pdekit.operators.DiffusionOperator` (vectors are grid fields ``(batch, *shape)``),
any callable on such batches, or a matrix (scipy sparse / numpy / torch; vectors ``(batch, n)``).
An unbatched ``b`` gives an unbatched ``x``.  Every method stops a system when its relative
residual ``||b - A x|| / ||b||`` reaches ``tol``, confirmed on the true residual (the cheap
recurrence residual drifts in low precision; a system whose recurrence claims convergence gets its
true residual computed, and iterates on from it if that is not yet below ``tol``).

Which method?  ``pcg`` needs a *fixed, linear, symmetric positive definite* preconditioner
(Jacobi, pdekit's symmetric ILU, AMG V-cycles).  A preconditioner that is
nonlinear or changes between applications (a neural network, an inexact inner solve) breaks the
short recurrence: use ``fcg`` (flexible CG, each new direction A-orthogonalised against the last
``truncation`` directions with an exact line search) or ``conjugate_directions`` (the DCDM
iteration, whose direction callable sees the normalised residual).

Breakdown (non-positive curvature ``p^T A p <= 0`` from an indefinite or non-symmetric operator, a
preconditioner with ``r^T M r <= 0``, NaN/Inf) stops that system with a status naming the cause,
``converged=False`` and a warning (or an exception with ``on_breakdown="raise"``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from pdekit.errors import NonFiniteError, PdekitError
from pdekit.linops import MatrixOperator, as_operator


class KrylovBreakdown(PdekitError, RuntimeError):
    """A Krylov iteration broke down (see the message for the system and the cause)."""


@dataclass
class SolveResult:
    """Outcome of a batched solve; per-system fields have shape ``(batch,)``."""

    x: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    residual: torch.Tensor  # true relative residual ||b - A x|| / ||b|| of the returned x
    history: torch.Tensor  # (iterations + 1, batch) relative residual per iteration
    status: list[str]
    method: str
    info: dict = field(default_factory=dict)

    @property
    def breakdown(self) -> torch.Tensor:
        return torch.tensor([s.startswith("breakdown") for s in self.status])

    def raise_if_failed(self) -> "SolveResult":
        bad = [(i, s) for i, s in enumerate(self.status) if s != "converged"]
        if bad:
            i, s = bad[0]
            raise KrylovBreakdown(f"{self.method}: {len(bad)} of {len(self.status)} system(s) did not converge; "
                                  f"system {i}: {s} (relative residual {float(self.residual[i]):.2e})")
        return self

    def __repr__(self) -> str:
        its = self.iterations.tolist()
        return (f"SolveResult({self.method}: systems={len(its)}, converged={int(self.converged.sum())}, "
                f"iterations={its if len(its) <= 8 else f'{min(its)}..{max(its)}'}, "
                f"max residual={float(self.residual.max()):.2e})")


def _dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vecdot(x.flatten(1), y.flatten(1))


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x.flatten(1), dim=1)


def _bshape(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-system scalars ``(batch,)`` broadcastable against vectors ``(batch, ...)``."""
    return t.reshape((-1,) + (1,) * (like.dim() - 1))


def _check_tol(tol) -> None:
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:  # NaN fails too
        raise ValueError(f"tol must be a relative residual in [0, 1), got {tol!r}")


class _Monitor:
    """Tracks which systems are still iterating, their iteration counts, statuses and history."""

    CHECK_EVERY = 10  # iterations between true-residual checks (one operator application each)
    STAGNATION_AFTER = 5000  # iterations before stagnation can be declared (CG plateaus for 600+ on hard systems)
    STAGNATION_GAIN = 0.99  # stagnated: the second half of the run improved the best true residual by < 1%
    GROWTH = 10.0  # the best iterate replaces a last one whose true residual is this many times worse
    REPLACEMENTS = 5  # refused convergence claims (recurrence below tol, true residual not) tolerated

    def __init__(self, A, b, r, tol, method, on_breakdown, x=None, callback=None, track_best=True):
        self.A, self.b, self.tol, self.method = A, b, tol, method
        self.callback = callback
        # the best iterate by true residual (returned if the last is worse); stagnation stops a
        # system only when a tolerance was asked for (tol = 0 means: run maxiter iterations)
        self.track_best = track_best and x is not None and not x.requires_grad
        self.stop_stagnant = self.track_best and tol > 0
        self.on_breakdown = on_breakdown
        if on_breakdown not in ("warn", "raise"):
            raise ValueError(f"on_breakdown must be 'warn' or 'raise', got {on_breakdown!r}")
        _check_tol(tol)
        self.bnorm = _norm(b)
        self.bsafe = torch.where(self.bnorm > 0, self.bnorm, torch.ones_like(self.bnorm))
        batch = b.shape[0]
        self.iterations = torch.zeros(batch, dtype=torch.int64)
        self.status = ["running"] * batch
        rel = _norm(r) / self.bsafe
        self.history = [rel]
        self.active = rel > tol  # a zero b, or an x0 that already solves it, needs no iteration
        for i in torch.nonzero(~self.active).flatten().tolist():
            self.status[i] = "converged"
        if self.track_best:
            self.best_x, self.best_rel = x.detach().clone(), rel.clone()
            self.best_it = torch.zeros(batch, dtype=torch.int64)
            self.snapshots = [(0, rel.clone())]  # (iteration, best true residual so far)
        self.replacements = torch.zeros(batch, dtype=torch.int64)

    def _remember(self, it: int, x, true_rel: torch.Tensor) -> None:
        better = self.active & (true_rel < self.best_rel)
        if bool(better.any()):
            self.best_x = torch.where(_bshape(better, x), x.detach(), self.best_x)
            self.best_rel = torch.where(better, true_rel, self.best_rel)
            self.best_it[better.cpu()] = it

    def track(self, it: int, x) -> None:
        """Every ``CHECK_EVERY`` iterations: the true residual, the best iterate, stagnation."""
        if not self.track_best or it % self.CHECK_EVERY or self.done:
            return
        true_rel = _norm(self.b - self.A(x)) / self.bsafe
        self._remember(it, x, true_rel)
        self.snapshots.append((it, self.best_rel.clone()))
        if not self.stop_stagnant or it < self.STAGNATION_AFTER:
            return
        half = max(i for i, (k, _) in enumerate(self.snapshots) if k <= it // 2)
        stuck = self.active & (self.best_rel > self.STAGNATION_GAIN * self.snapshots[half][1])
        for i in torch.nonzero(stuck).flatten().tolist():
            self.status[i] = (f"stagnated: the true residual improved by less than 1% over iterations "
                              f"{self.snapshots[half][0]}-{it} (best {float(self.best_rel[i]):.2e})")
            self.iterations[i] = it
        self.active = self.active & ~stuck

    def report(self, it: int, x) -> None:
        if self.callback is not None:
            self.callback(it, x, self.history[-1].detach().cpu())

    @property
    def done(self) -> bool:
        return not bool(self.active.any())

    def step(self, it: int, x, r, rnorm, bad: torch.Tensor, reason: str, record: bool = True) -> bool:
        """Record iteration ``it``: stop systems that broke down (``bad``) or truly converged.
        May replace entries of ``r`` by the true residual; returns whether it did."""
        rel = rnorm / self.bsafe
        if record:
            self.history.append(rel)
        bad = bad & self.active
        candidate = self.active & ~bad & (rel <= self.tol)
        flags = torch.stack([bad.any(), candidate.any()]).tolist()  # one host sync
        replaced = False
        if flags[0]:
            broken = torch.nonzero(bad).flatten().tolist()
            for i in broken:
                self.status[i] = f"breakdown: {reason}"
                self.iterations[i] = it
            self.active = self.active & ~bad
            self._report(broken)
        if flags[1]:
            true_r = self.b - self.A(x)
            true_rel = _norm(true_r) / self.bsafe
            confirmed = candidate & (true_rel <= self.tol)
            replace = candidate & ~confirmed
            replaced = bool(replace.any())
            if self.track_best:
                self._remember(it, x, true_rel)
            self.replacements += replace.cpu().to(torch.int64)
            floor = replace & (self.replacements.to(replace.device) > self.REPLACEMENTS) & \
                torch.tensor(self.stop_stagnant, device=replace.device)
            for i in torch.nonzero(floor).flatten().tolist():
                self.status[i] = (f"stagnated at the round-off floor: the recurrence residual reached tol "
                                  f"{self.REPLACEMENTS + 1} times, the true residual stays at {float(true_rel[i]):.2e}")
                self.iterations[i] = it
            self.active = self.active & ~floor
            replace = replace & ~floor
            if replaced and not r.requires_grad:  # residual replacement: continue from the true residual
                r.copy_(torch.where(_bshape(replace, r), true_r, r))
            for i in torch.nonzero(confirmed).flatten().tolist():
                self.status[i] = "converged"
                self.iterations[i] = it
            self.active = self.active & ~confirmed
        return replaced

    def _report(self, systems):
        msg = "; ".join(f"system {i}: {self.status[i]}" for i in systems[:5])
        text = f"{self.method} broke down in {len(systems)} system(s): {msg}"
        if self.on_breakdown == "raise":
            raise KrylovBreakdown(text)
        warnings.warn(text, RuntimeWarning, stacklevel=4)

    def finish(self, x, it: int, unbatch: bool, info: dict | None = None) -> SolveResult:
        for i in torch.nonzero(self.active).flatten().tolist():
            self.status[i] = f"not converged after {it} iterations"
            self.iterations[i] = it
        true_rel = _norm(self.b - self.A(x)) / self.bsafe
        converged = torch.tensor([s == "converged" for s in self.status])
        if self.track_best:
            # a system that did not converge returns its best iterate when the last one is far worse
            # (past the round-off floor, a poor or varying preconditioner: the residual grows again).
            # Smaller rises are CG's normal oscillation of the residual while the error in the A-norm
            # still falls, so the last iterate is kept then.
            worse = (~converged).to(true_rel.device) & (self.GROWTH * self.best_rel < true_rel) & \
                torch.isfinite(self.best_rel)
            if bool(worse.any()):
                grown = torch.nonzero(worse).flatten().tolist()
                for i in grown:
                    self.status[i] += (f"; the residual grew from {float(self.best_rel[i]):.2e} (iteration "
                                       f"{int(self.best_it[i])}) to {float(true_rel[i]):.2e}: the best iterate is returned")
                warnings.warn(f"{self.method}: {self.status[grown[0]]}" +
                              (f" (and {len(grown) - 1} more system(s))" if len(grown) > 1 else ""),
                              RuntimeWarning, stacklevel=3)
                x = torch.where(_bshape(worse, x), self.best_x, x)
                true_rel = torch.where(worse, self.best_rel, true_rel)
        true_rel = torch.where(self.bnorm > 0, true_rel, torch.zeros_like(true_rel))
        history = torch.stack(self.history).cpu()
        if unbatch:
            x = x[0]
        return SolveResult(x=x, iterations=self.iterations, converged=converged, residual=true_rel.cpu(),
                           history=history, status=self.status, method=self.method, info=info or {})


def _prepare(A, b, x0):
    """Normalise inputs: operator callable, batched b/x0 tensors, and whether to unbatch at the end."""
    op = as_operator(A)
    if not isinstance(b, torch.Tensor):
        b = torch.as_tensor(np.asarray(b, dtype=np.float64))
    if not b.is_floating_point():
        b = b.double()
    if isinstance(op, MatrixOperator):
        unbatch = b.dim() == 1
    elif hasattr(op, "ndim"):
        unbatch = b.dim() == op.ndim
    else:
        unbatch = False
    if unbatch:
        b = b.unsqueeze(0)
    if b.shape[0] == 0:
        raise ValueError(f"b holds no systems (shape {tuple(b.shape)})")
    if not torch.isfinite(b).all():
        bad = torch.nonzero(~torch.isfinite(b.flatten(1)).all(dim=1)).flatten().tolist()
        raise NonFiniteError(f"right-hand side contains NaN or Inf (system(s) {bad[:5]})")
    if x0 is None:
        x = torch.zeros_like(b)
        r = b.clone()
    else:
        x = torch.as_tensor(x0, dtype=b.dtype, device=b.device).clone()
        x = x.unsqueeze(0) if unbatch else x
        if x.shape != b.shape:
            raise ValueError(f"x0 has shape {tuple(x.shape)}, b has {tuple(b.shape)}")
        if not torch.isfinite(x).all():
            raise NonFiniteError("initial guess x0 contains NaN or Inf")
        r = b - op(x)
    return op, b, x, r, unbatch


def _default_maxiter(b: torch.Tensor, maxiter):
    """``maxiter`` checked, or the default: 10 × unknowns (CG's worst case in exact arithmetic is
    the unknowns; a stuck run is stopped earlier by the stagnation test)."""
    if maxiter is not None and (isinstance(maxiter, bool) or not isinstance(maxiter, (int, float, np.integer))
                                or not math.isfinite(maxiter) or int(maxiter) != maxiter or maxiter < 0):
        raise ValueError(f"maxiter must be a non-negative integer, got {maxiter!r}")
    return int(maxiter) if maxiter is not None else 10 * int(np.prod(b.shape[1:]))


def _apply_preconditioner(M, r: torch.Tensor) -> torch.Tensor:
    z = M(r)
    if not isinstance(z, torch.Tensor) or z.shape != r.shape:
        raise ValueError(f"the preconditioner returned {tuple(z.shape) if hasattr(z, 'shape') else type(z).__name__} "
                         f"for a residual of shape {tuple(r.shape)}: it must return the residual's shape")
    return z


def _probe_symmetry(op, r: torch.Tensor, mon: "_Monitor", check: bool) -> None:
    """Stop systems whose operator is clearly not symmetric (CG-type methods assume SPD ``A``):
    with ``v = r``, a symmetric ``A`` gives ``(Av)^T (Av) = v^T A (Av)``.  Two operator
    applications; skipped for pdekit's own operators (symmetric by construction)."""
    from pdekit.operators import DiffusionOperator

    if not check or isinstance(op, DiffusionOperator) or mon.done:
        return
    Av = op(r)
    AAv = op(Av)
    gap = (_dot(Av, Av) - _dot(r, AAv)).abs()
    scale = _norm(Av) ** 2 + _norm(r) * _norm(AAv)
    rel = gap / torch.where(scale > 0, scale, torch.ones_like(scale))
    limit = 10 * math.sqrt(torch.finfo(r.dtype).eps)
    mon.step(0, None, r, _norm(r), rel > limit,
             f"the operator is not symmetric (probe asymmetry above {limit:.1e}); CG-type methods need SPD A: "
             "use a solver for non-symmetric systems (e.g. scipy.sparse.linalg.gmres)", record=False)


def _nonfinite(value: torch.Tensor) -> torch.Tensor:
    return ~torch.isfinite(value)


def pcg(A, b, M: Callable | None = None, x0=None, *, tol: float = 1e-8, maxiter: int | None = None,
        on_breakdown: str = "warn", check_symmetry: bool = True, callback: Callable | None = None) -> SolveResult:
    """Preconditioned conjugate gradients, batched.  ``M`` maps a residual batch to ``M r`` and must
    be a fixed linear SPD operator (use :func:`fcg` otherwise); ``None`` gives plain CG.
    ``tol`` in [0, 1) (0: run ``maxiter`` iterations).  ``check_symmetry``: probe ``A`` for symmetry
    first (two operator applications; not for pdekit operators) and stop systems that fail.
    Differentiable: with an ``x0`` or ``b`` that requires grad (and grad enabled) the iterates are
    built out of place, so gradients flow back through every step.

    A system that stops short of ``tol`` returns its best iterate by true residual (checked every
    10 iterations) when the last one is more than 10 times worse, and one whose true residual stalls
    (less than 1% better over the second half of the run, after 5000 iterations; or the recurrence
    claiming ``tol`` six times while the true residual does not follow: the round-off floor) stops
    with status ``"stagnated: ..."``.
    ``callback(iteration, x, relative_residuals)`` is called after every iteration (progress; ``x``
    the current iterate, ``relative_residuals`` the recurrence's, one per system)."""
    method = "cg" if M is None else "pcg"
    if M is not None and getattr(M, "linear", True) is False:
        warnings.warn(f"{type(M).__name__} is not a fixed linear preconditioner: PCG's short recurrence "
                      "assumes one and may stagnate. Use pdekit.krylov.fcg instead.", RuntimeWarning, stacklevel=2)
    op, b, x, r, unbatch = _prepare(A, b, x0)
    differentiable = torch.is_grad_enabled() and (x.requires_grad or b.requires_grad)
    mon = _Monitor(op, b, r, tol, method, on_breakdown, x=x, callback=callback, track_best=not differentiable)
    maxiter = _default_maxiter(b, maxiter)
    _probe_symmetry(op, r, mon, check_symmetry)
    apply_m = (lambda v: v.clone()) if M is None else (lambda v: _apply_preconditioner(M, v))
    z = apply_m(r)
    rz = _dot(r, z)
    p = z
    it = 0
    mon.step(0, x, r, _norm(r), _nonfinite(rz) | (rz <= 0),
             "preconditioner gave r^T M r <= 0 or NaN/Inf (not SPD?)", record=False)
    while not mon.done and it < maxiter:
        it += 1
        act = mon.active.to(b.device)
        q = op(p)
        pq = _dot(p, q)
        curvature = act & ((pq <= 0) | _nonfinite(pq))
        ok = act & ~curvature
        alpha = torch.where(ok, rz / torch.where(ok, pq, torch.ones_like(pq)), torch.zeros_like(pq))
        if differentiable:  # out of place: autograd keeps every iterate (NPSolver's stop_gradient: false)
            x = x + _bshape(alpha, x) * p
            r = r - _bshape(alpha, r) * q
        else:
            x.add_(_bshape(alpha, x) * p)
            r.sub_(_bshape(alpha, r) * q)
        rnorm = _norm(r)
        mon.step(it, x, r, rnorm, curvature | (act & _nonfinite(rnorm)),
                 "non-positive curvature p^T A p <= 0 or NaN/Inf (operator not SPD?)")
        mon.report(it, x)
        mon.track(it, x)
        if mon.done:
            break
        act = mon.active.to(b.device)
        z = apply_m(r)
        rz_new = _dot(r, z)
        bad_m = act & ((rz_new <= 0) | _nonfinite(rz_new))
        if bool(bad_m.any()):
            mon.step(it, x, r, rnorm, bad_m, "preconditioner gave r^T M r <= 0 or NaN/Inf (not SPD?)",
                     record=False)
            act = mon.active.to(b.device)
        beta = torch.where(act, rz_new / torch.where(act, rz, torch.ones_like(rz)), torch.zeros_like(rz))
        p = z + _bshape(beta, z) * p
        if not bool(act.all()):
            p = torch.where(_bshape(act, p), p, torch.zeros_like(p))
        rz = torch.where(act, rz_new, rz)
    return mon.finish(x, it, unbatch)


def cg(A, b, x0=None, **kwargs) -> SolveResult:
    """Conjugate gradients (no preconditioner), batched.  See :func:`pcg`."""
    return pcg(A, b, None, x0, **kwargs)


def conjugate_directions(A, b, direction: Callable, x0=None, *, k: int = 2, normalize: bool = True,
                         tol: float = 1e-8, maxiter: int | None = None, restart: int | None = None,
                         true_residual_every: int | None = 50, on_breakdown: str = "warn",
                         method: str = "conjugate_directions", check_symmetry: bool = True,
                         callback: Callable | None = None) -> SolveResult:
    """The DCDM iteration: each step takes a search direction ``q = direction(r / ||r||)`` (or
    ``direction(r)`` when ``normalize=False``), A-orthogonalises it against the previous ``k``
    directions (modified Gram–Schmidt) and takes the exact line-search step
    ``x += (q^T r / q^T A q) q``, so the direction's scale does not matter.

    ``restart``: forget all stored directions every ``restart`` iterations.
    ``true_residual_every``: recompute ``r = b - A x`` every so many iterations (the recurrence
    residual is cheap but drifts; the final answer is always judged on the true residual).
    Best iterate, stagnation and ``callback``: as in :func:`pcg`.
    """
    if k < 0:
        raise ValueError(f"k (directions kept) must be >= 0, got {k}")
    op, b, x, r, unbatch = _prepare(A, b, x0)
    mon = _Monitor(op, b, r, tol, method, on_breakdown, x=x, callback=callback)
    maxiter = _default_maxiter(b, maxiter)
    _probe_symmetry(op, r, mon, check_symmetry)
    memory: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (p, A p, p^T A p)
    it = 0
    rnorm = _norm(r)
    while not mon.done and it < maxiter:
        it += 1
        act = mon.active.to(b.device)
        if restart and it > 1 and (it - 1) % restart == 0:
            memory.clear()
        rin = r / _bshape(torch.where(rnorm > 0, rnorm, torch.ones_like(rnorm)), r) if normalize else r
        z = direction(rin)
        if not isinstance(z, torch.Tensor) or z.shape != r.shape:
            raise ValueError(f"the direction (preconditioner) returned "
                             f"{tuple(z.shape) if hasattr(z, 'shape') else type(z).__name__} for a residual of shape "
                             f"{tuple(r.shape)}: it must return the residual's shape")
        z = z.to(r.dtype)
        for p_j, q_j, pq_j in memory:
            z = z - _bshape(_dot(z, q_j) / pq_j, z) * p_j
        z = torch.where(_bshape(act, z), z, torch.zeros_like(z))
        q = op(z)
        pq = _dot(z, q)
        curvature = act & ((pq <= 0) | _nonfinite(pq))
        ok = act & ~curvature
        z = torch.where(_bshape(ok, z), z, torch.zeros_like(z))  # a NaN direction must not reach x
        q = torch.where(_bshape(ok, q), q, torch.zeros_like(q))
        alpha = torch.where(ok, _dot(z, r) / torch.where(ok, pq, torch.ones_like(pq)), torch.zeros_like(pq))
        x.add_(_bshape(alpha, x) * z)
        r.sub_(_bshape(alpha, r) * q)
        if true_residual_every and it % true_residual_every == 0:
            r.copy_(torch.where(_bshape(act, r), b - op(x), r))
        rnorm = _norm(r)
        if mon.step(it, x, r, rnorm, curvature | (act & _nonfinite(rnorm)),
                    "non-positive curvature q^T A q <= 0 or NaN/Inf (operator not SPD, or direction is zero/NaN)"):
            rnorm = _norm(r)  # r was replaced by the true residual
        mon.report(it, x)
        mon.track(it, x)
        if k > 0:
            ok_now = ok & mon.active.to(b.device)
            memory.append((z, q, torch.where(ok_now, pq, torch.ones_like(pq))))
            if len(memory) > k:
                memory.pop(0)
    return mon.finish(x, it, unbatch, {"k": k})


def fcg(A, b, M: Callable | None = None, x0=None, *, truncation: int = 5, restart: int | None = None,
        tol: float = 1e-8, maxiter: int | None = None, on_breakdown: str = "warn",
        check_symmetry: bool = True, callback: Callable | None = None) -> SolveResult:
    """Flexible CG (Notay 2000): valid for nonlinear or varying preconditioners ``M``.  Each new
    direction ``M r`` is A-orthogonalised against the last ``truncation`` directions; ``restart``
    forgets them all every so many iterations."""
    direction = (lambda v: v) if M is None else M
    return conjugate_directions(A, b, direction, x0, k=truncation, normalize=False, tol=tol, maxiter=maxiter,
                                restart=restart, on_breakdown=on_breakdown, method="fcg",
                                check_symmetry=check_symmetry, callback=callback)


def bicgstab(A, b, M: Callable | None = None, x0=None, *, tol: float = 1e-8, maxiter: int | None = None,
             on_breakdown: str = "warn", callback: Callable | None = None) -> SolveResult:
    """BiCGStab (van der Vorst 1992), batched, for *non-symmetric* systems (e.g. the implicit
    momentum equations of a flow with advection); right-preconditioned by a fixed linear ``M``
    (``None``: none).  Two operator and two preconditioner applications per iteration.  Breakdown
    (``rho = r0^T r = 0`` or ``omega = 0``, NaN/Inf) stops that system with a status naming it.
    Best iterate, stagnation and ``callback``: as in :func:`pcg`."""
    op, b, x, r, unbatch = _prepare(A, b, x0)
    mon = _Monitor(op, b, r, tol, "bicgstab", on_breakdown, x=x, callback=callback)
    maxiter = _default_maxiter(b, maxiter)
    apply_m = (lambda v: v) if M is None else (lambda v: _apply_preconditioner(M, v))
    shadow = r.clone()
    ones = torch.ones(b.shape[0], dtype=b.dtype, device=b.device)
    rho, alpha, omega = ones.clone(), ones.clone(), ones.clone()
    v, p = torch.zeros_like(b), torch.zeros_like(b)
    safe = lambda t: torch.where(t != 0, t, torch.ones_like(t))  # noqa: E731
    it = 0
    while not mon.done and it < maxiter:
        it += 1
        act = mon.active.to(b.device)
        rho_new = _dot(shadow, r)
        broken = act & ((rho_new == 0) | (omega == 0) | _nonfinite(rho_new))
        beta = torch.where(act & ~broken, (rho_new / safe(rho)) * (alpha / safe(omega)), torch.zeros_like(rho))
        p = r + _bshape(beta, p) * (p - _bshape(omega, v) * v)
        p_hat = apply_m(p)
        v = op(p_hat)
        denominator = _dot(shadow, v)
        broken = broken | (act & ((denominator == 0) | _nonfinite(denominator)))
        ok = act & ~broken
        alpha = torch.where(ok, rho_new / safe(denominator), torch.zeros_like(rho))
        s = r - _bshape(alpha, v) * v
        s_hat = apply_m(s)
        t = op(s_hat)
        tt = _dot(t, t)
        omega = torch.where(ok & (tt > 0), _dot(t, s) / safe(tt), torch.zeros_like(rho))
        x.add_(_bshape(torch.where(ok, alpha, 0.0), x) * p_hat + _bshape(omega, x) * s_hat)
        r = torch.where(_bshape(ok, r), s - _bshape(omega, t) * t, r)
        rho = torch.where(ok, rho_new, rho)
        rnorm = _norm(r)
        if mon.step(it, x, r, rnorm, broken | (act & _nonfinite(rnorm)),
                    "rho = r0^T r = 0, omega = 0 or NaN/Inf (restart from the current iterate, or a better preconditioner)"):
            rnorm = _norm(r)
        mon.report(it, x)
        mon.track(it, x)
    return mon.finish(x, it, unbatch)


def sor(A, b, omega: float, x0=None, *, tol: float = 1e-8, maxiter: int | None = None,
        index: int | None = None) -> SolveResult:
    """Successive over-relaxation, the stationary method: ``x ← x + ω (D + ωL)⁻¹ (b − A x)`` (one
    forward Gauss–Seidel-type sweep per iteration, natural ordering), from ``x0`` (default 0) until
    the relative residual ``‖b − Ax‖/‖b‖ ≤ tol``.  Converges for SPD ``A`` and ``0 < ω < 2``; for
    the model Poisson problem the optimal ``ω = 2 / (1 + sin(π h))``.  ``A``: a
    :class:`~pdekit.operators.DiffusionOperator` (one system, or ``index``) or a sparse matrix;
    ``b`` laid out like that (fields or vectors), batched or not.  Runs on CPU (scipy); the result
    comes back on ``b``'s device and dtype."""
    from pdekit.precond import RelaxationFactors, _system

    matrix, layout, grid = _system(A, index)
    factors = RelaxationFactors(matrix, omega)
    if not isinstance(b, torch.Tensor):
        b = torch.as_tensor(np.asarray(b, dtype=np.float64))
    single = tuple(b.shape) == layout.shape
    fields = b.unsqueeze(0) if single else b
    if tuple(fields.shape[1:]) != layout.shape:
        raise ValueError(f"b has shape {tuple(b.shape)}; expected {layout.shape} or (batch, *{layout.shape})")
    if not torch.isfinite(fields).all():
        raise NonFiniteError("right-hand side contains NaN or Inf")
    B = layout.to_vectors(fields.detach().to("cpu", torch.float64)).numpy().T  # (n, batch)
    X = np.zeros_like(B) if x0 is None else \
        layout.to_vectors(torch.as_tensor(x0, dtype=torch.float64).reshape(fields.shape).cpu()).numpy().T.copy()
    _check_tol(tol)
    maxiter = _default_maxiter(fields, maxiter)
    bnorm = np.linalg.norm(B, axis=0)
    bsafe = np.where(bnorm > 0, bnorm, 1.0)
    R = B - matrix @ X
    rel = np.linalg.norm(R, axis=0) / bsafe
    history, active = [rel], rel > tol
    iterations = np.zeros(B.shape[1], dtype=np.int64)
    it = 0
    while active.any() and it < maxiter:
        it += 1
        X[:, active] += factors.omega * factors.lower.solve(np.ascontiguousarray(R[:, active]))
        R = B - matrix @ X
        rel = np.linalg.norm(R, axis=0) / bsafe
        history.append(rel)
        if not np.isfinite(rel).all():
            break
        iterations[active] = it
        active = active & (rel > tol)
    converged = rel <= tol
    status = ["converged" if c else (f"not converged after {it} iterations" if np.isfinite(r) else "diverged")
              for c, r in zip(converged, rel)]
    x = layout.to_fields(torch.from_numpy(np.ascontiguousarray(X.T))).to(b.device, b.dtype)
    return SolveResult(x=x[0] if single else x, iterations=torch.as_tensor(iterations),
                       converged=torch.as_tensor(converged), residual=torch.as_tensor(rel),
                       history=torch.as_tensor(np.stack(history)), status=status, method="sor",
                       info={"omega": factors.omega})
