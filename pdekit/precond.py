"""Preconditioners behind one protocol.

Every preconditioner is

* callable on torch tensors laid out like the solver's vectors for the operator it was built
  from (grid fields ``(batch, *shape)`` for a :class:`~pdekit.operators.DiffusionOperator`,
  ``(batch, n)`` for a matrix), for pdekit's Krylov solvers, on any device;
* convertible with ``as_linear_operator()`` to a ``scipy.sparse.linalg.LinearOperator`` on the
  active unknowns, for ``scipy.sparse.linalg.cg(A, b, M=...)`` and friends.

``linear`` says whether it is a fixed linear map.  Classical ones are; a neural network is not,
so it belongs in :func:`pdekit.krylov.fcg` (scipy's ``cg``/``gmres`` assume a fixed linear ``M``
and may stagnate or mislead with one; scipy's only flexible method is ``gcrotmk``).

Classical: :class:`Jacobi`, :class:`SSOR` (symmetric over-relaxation with a parameter ω),
:class:`ILU` (scipy's incomplete LU), :class:`AMG` (pyamg smoothed aggregation, one V-cycle per
application).  Learned: :class:`ModulePreconditioner` wraps any
``torch.nn.Module`` mapping a residual to a correction.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Protocol, runtime_checkable

import numpy as np
import pyamg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pdekit.errors import GridMismatchError
from pdekit.layout import Layout
from pdekit.operators import DiffusionOperator


@runtime_checkable
class Preconditioner(Protocol):
    """What pdekit's solvers and scipy need from a preconditioner."""

    linear: bool

    def __call__(self, r: torch.Tensor) -> torch.Tensor: ...

    def as_linear_operator(self) -> spla.LinearOperator: ...


def _system(A, index: int | None):
    """(CSR matrix, layout, grid-shaped?) of the single system behind ``A``."""
    if isinstance(A, DiffusionOperator):
        if A.batch_size > 1 and index is None:
            raise ValueError(f"the operator holds {A.batch_size} systems; pass index=i to precondition one")
        i = index or 0
        if not A.mask[i].any():
            raise ValueError(f"system {i} of the operator has no unknowns (its mask is all False): nothing to "
                             "precondition")
        return A.to_sparse(i), A.layout(i), True
    if sp.issparse(A):
        A = check_spd_matrix(A)
        return A, Layout((A.shape[0],)), False
    raise TypeError(f"expected a DiffusionOperator or a scipy sparse matrix, got {type(A).__name__}")


def check_spd_matrix(A) -> sp.csr_matrix:
    """A user's sparse matrix as CSR float64 if it can be symmetric positive definite: square,
    non-empty, real floating point, finite, symmetric (to 1e-12 of its largest entry) with a
    positive diagonal; otherwise one line naming the problem (:class:`ValueError`).  Definiteness
    itself is not proven (that costs a factorisation): a solve reports it (non-positive curvature)."""
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise GridMismatchError(f"the matrix must be square, got shape {A.shape}")
    if A.shape[0] == 0:
        raise ValueError("the matrix is empty (0 x 0): nothing to precondition")
    if not np.issubdtype(A.dtype, np.floating):
        raise ValueError(f"the matrix must hold real floating-point numbers, got dtype {A.dtype} "
                         "(convert it with A.astype(float) if that is what you mean)")
    A = sp.csr_matrix(A, dtype=np.float64)
    if not np.all(np.isfinite(A.data)):
        raise ValueError("the matrix holds NaN or Inf entries")
    scale = abs(A).max()
    asymmetry = abs(A - A.T).max() if A.nnz else 0.0
    if asymmetry > 1e-12 * scale:
        raise ValueError(f"the matrix is not symmetric (largest |A - A^T| entry {asymmetry:.3g}, largest entry "
                         f"{scale:.3g}): these preconditioners need an SPD matrix")
    diagonal = A.diagonal()
    if np.any(diagonal <= 0):
        raise ValueError(f"the matrix has {int(np.sum(diagonal <= 0))} non-positive diagonal entries (first at row "
                         f"{int(np.argmax(diagonal <= 0))}): it is not SPD")
    return A


class _Base:
    """Shared plumbing: the layout of the tensors ``__call__`` sees, and the scipy view."""

    linear = True

    def __init__(self, layout: Layout, grid_layout: bool):
        self.layout = layout
        self.grid_layout = grid_layout  # tensors are (batch, *shape) fields, else (batch, n)

    @property
    def n(self) -> int:
        return self.layout.n

    def _vectors(self, r: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Batched active vectors ``(batch, n)`` from a solver tensor, and whether it was unbatched."""
        single = tuple(r.shape) == self.layout.shape
        batched = r.unsqueeze(0) if single else r
        if tuple(batched.shape[1:]) != self.layout.shape:
            raise GridMismatchError(f"residual has shape {tuple(r.shape)}, the preconditioner expects "
                                    f"{self.layout.shape} or (batch, *{self.layout.shape})")
        return self.layout.to_vectors(batched), single

    def _tensor_out(self, vectors: torch.Tensor, single: bool) -> torch.Tensor:
        out = self.layout.to_fields(vectors)
        return out[0] if single else out

    def as_linear_operator(self) -> spla.LinearOperator:
        def matmat(V: np.ndarray) -> np.ndarray:
            V = np.asarray(V, dtype=np.float64).reshape(self.n, -1)
            fields = self.layout.to_fields(torch.from_numpy(np.ascontiguousarray(V.T)))
            out = self(fields)
            return self.layout.to_vectors(out).detach().cpu().numpy().T

        return spla.LinearOperator((self.n, self.n), matvec=lambda v: matmat(v)[:, 0], matmat=matmat,
                                   dtype=np.float64)


@functools.cache
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    """BLAS limited to one thread while scipy/pyamg work inside a torch loop: torch's OpenMP
    threads and OpenBLAS's pool spinning on the same cores made each AMG-PCG iteration ~3.7x
    slower (measured, 2 cores, 16k unknowns); these small vector operations gain nothing from
    threads."""
    return _controller().limit(limits=1, user_api="blas")


class _SciPyBacked(_Base):
    """A preconditioner applied by scipy/pyamg on CPU float64 columns (``_solve``)."""

    def _solve(self, V: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        vectors, single = self._vectors(r)
        with _one_blas_thread():
            out = self._solve(vectors.detach().to("cpu", torch.float64).numpy().T).T
        return self._tensor_out(torch.from_numpy(np.ascontiguousarray(out)).to(r.device, r.dtype), single)

    def as_linear_operator(self) -> spla.LinearOperator:
        return spla.LinearOperator((self.n, self.n), matvec=lambda v: self._solve(np.asarray(v).reshape(-1, 1))[:, 0],
                                   matmat=lambda V: self._solve(np.asarray(V)), dtype=np.float64)


class Jacobi(_Base):
    """Diagonal scaling ``M r = r / diag(A)``; torch-native, also for batched operators."""

    def __init__(self, A):
        if isinstance(A, DiffusionOperator):
            super().__init__(A.layout(0), True)
            with np.errstate(divide="ignore"):
                inv = np.where(A.mask, 1.0 / A.diagonal, 0.0)
            self._inv = inv if A.batch_size > 1 else inv[0]
            self._batched_op = A.batch_size > 1
        else:
            matrix, layout, _ = _system(A, None)
            super().__init__(layout, False)
            d = matrix.diagonal()
            if np.any(d <= 0):
                raise ValueError("Jacobi needs a positive diagonal (the matrix is not SPD)")
            self._inv = 1.0 / d
            self._batched_op = False
        self._cache: dict = {}

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        key = (str(r.device), r.dtype)
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(self._inv, dtype=r.dtype, device=r.device)
        return self._cache[key] * r

    def as_linear_operator(self) -> spla.LinearOperator:
        if self._batched_op:
            raise ValueError("a Jacobi preconditioner of a batched operator has no single scipy form")
        return super().as_linear_operator()


class ILU(_SciPyBacked):
    """Symmetric incomplete factorisation ``M = L D L^T`` built from scipy's ``spilu`` (SuperLU).

    SuperLU's incomplete LU drops entries of L and U independently, so ``(LU)^-1`` is not
    symmetric and plain PCG with it stagnates.  For a symmetric matrix, ``U ~ D L^T``; keeping the
    unit lower factor ``L`` and ``D = diag(U)`` gives an SPD preconditioner (an incomplete
    LDL^T / Cholesky), valid in PCG.  Applied on CPU by two sparse triangular solves.
    """

    def __init__(self, A, *, drop_tol: float = 1e-3, fill_factor: float = 4.0, index: int | None = None):
        matrix, layout, grid = _system(A, index)
        super().__init__(layout, grid)
        # natural ordering without pivoting: the factors stay those of the symmetric matrix
        ilu = spla.spilu(matrix.tocsc(), drop_tol=drop_tol, fill_factor=fill_factor, permc_spec="NATURAL",
                         diag_pivot_thresh=0.0, options={"Equil": False})
        self._lower = sp.csr_matrix(ilu.L)
        self._upper = sp.csr_matrix(ilu.L.T)
        self._diag = ilu.U.diagonal()
        if np.any(self._diag <= 0):
            raise ValueError("incomplete factorisation has non-positive pivots: the matrix is not SPD "
                             "(or drop_tol is too coarse for it)")

    def _solve(self, V: np.ndarray) -> np.ndarray:
        V = np.asarray(V, dtype=np.float64)
        y = spla.spsolve_triangular(self._lower, V, lower=True, unit_diagonal=True)
        y = y / (self._diag[:, None] if y.ndim == 2 else self._diag)
        return spla.spsolve_triangular(self._upper, y, lower=False, unit_diagonal=True)


def check_omega(omega) -> float:
    """A relaxation parameter of SOR/SSOR: a number in (0, 2), where both converge for SPD A."""
    from pdekit.errors import ConfigError

    if isinstance(omega, bool) or not isinstance(omega, (int, float, np.floating)) or not 0 < omega < 2:
        raise ConfigError(f"omega must be a number in (0, 2) (SOR/SSOR converge only there), got {omega!r}")
    return float(omega)


class RelaxationFactors:
    """``D + omega L`` and ``D + omega U`` of a sparse matrix, factored once (SuperLU on a triangular
    matrix in natural order is the matrix itself: each solve is one C-level sweep, ~10x faster
    than ``scipy.sparse.linalg.spsolve_triangular``)."""

    def __init__(self, matrix, omega: float):
        matrix = sp.csr_matrix(matrix)
        self.omega = check_omega(omega)
        self.diagonal = matrix.diagonal()
        if np.any(self.diagonal <= 0):
            raise ValueError("SOR/SSOR need a positive diagonal (the matrix is not SPD)")
        d = sp.diags(self.diagonal)
        options = {"permc_spec": "NATURAL", "diag_pivot_thresh": 0.0, "options": {"SymmetricMode": True}}
        self.lower = spla.splu(sp.csc_matrix(d + self.omega * sp.tril(matrix, -1)), **options)
        self.upper = spla.splu(sp.csc_matrix(d + self.omega * sp.triu(matrix, 1)), **options)


class SSOR(_SciPyBacked):
    """Symmetric successive over-relaxation as an SPD preconditioner (valid in ``pcg``):
    ``M = (D + ωL) D⁻¹ (D + ωU) / (ω(2 − ω))`` with ``U = Lᵀ``, for ``0 < ω < 2``; ``ω = 1`` is
    symmetric Gauss–Seidel.  Applied on CPU by a forward and a backward sweep (natural ordering
    of the active unknowns).  ``omega`` is what :mod:`pdekit.relaxation` learns across a sequence."""

    def __init__(self, A, omega: float = 1.0, *, index: int | None = None):
        matrix, layout, grid = _system(A, index)
        super().__init__(layout, grid)
        self.factors = RelaxationFactors(matrix, omega)
        self.omega = self.factors.omega

    def _solve(self, V: np.ndarray) -> np.ndarray:
        V = np.asarray(V, dtype=np.float64)
        w = self.omega
        y = self.factors.lower.solve(V)
        y = y * (self.factors.diagonal[:, None] if y.ndim == 2 else self.factors.diagonal)
        return w * (2 - w) * self.factors.upper.solve(y)


@contextlib.contextmanager
def numpy_seed_zero():
    """numpy's global random state seeded with 0 inside, restored after (also a decorator).  pyamg
    estimates spectral radii from that state: seeded, one matrix always gives one hierarchy (and
    the same iterations)."""
    state = np.random.get_state()
    np.random.seed(0)
    try:
        yield
    finally:
        np.random.set_state(state)


class AMG(_SciPyBacked):
    """Smoothed-aggregation algebraic multigrid (pyamg); each application is one V-cycle from a
    zero initial guess, a fixed linear SPD operator (symmetric smoothing), so PCG is valid.

    ``setup``: a function building the ``pyamg.multilevel.MultilevelSolver`` from the CSR matrix
    instead of ``pyamg.smoothed_aggregation_solver(matrix, **pyamg_kwargs)`` (a learned AMG's
    setup, :func:`pdekit.learning.solvers.load`).  ``aspreconditioner()`` gives pyamg's own
    ``LinearOperator`` (the idiom of pyamg's documentation)."""

    def __init__(self, A, *, cycle: str = "V", index: int | None = None, setup=None, **pyamg_kwargs):
        matrix, layout, grid = _system(A, index)
        super().__init__(layout, grid)
        if setup is not None and pyamg_kwargs:
            raise ValueError(f"pass either setup or pyamg options, not both (got {sorted(pyamg_kwargs)})")
        if setup is None:
            setup = functools.partial(pyamg.smoothed_aggregation_solver, **pyamg_kwargs)
        # (one BLAS thread: a learned setup's network ran 2-3x slower beside OpenBLAS's spinning pool)
        with numpy_seed_zero(), _one_blas_thread():
            self.hierarchy = setup(matrix)
        self.cycle = cycle
        self._cycle = self.hierarchy.aspreconditioner(cycle=cycle)

    def aspreconditioner(self) -> spla.LinearOperator:
        """pyamg's preconditioner (one cycle per application) on the active unknowns."""
        return self.hierarchy.aspreconditioner(cycle=self.cycle)

    def _solve(self, V: np.ndarray) -> np.ndarray:
        V = np.asarray(V, dtype=np.float64)
        out = np.empty_like(V)
        for j in range(V.shape[1]):  # pyamg cycles one right-hand side at a time
            out[:, j] = self._cycle.matvec(V[:, j])
        return out


class ModulePreconditioner(_Base):
    """Any ``torch.nn.Module`` mapping a residual to a correction, as a preconditioner.

    Args:
        module: maps ``(batch, 1, *shape)`` (``channel_dim=True``) or ``(batch, *shape)`` to the
            same shape; run in eval mode without gradients, in the module's own dtype/device.
        A: the operator or matrix whose vectors it will see (fixes the layout and mask).
        linear: whether the module is a fixed linear map (default False: a network is not, so use
            it with :func:`pdekit.krylov.fcg` or the DCDM iteration, not plain PCG).
        smoothing: damped-Jacobi sweeps (ω = 2/3) on ``A x = r`` after the module (``A`` a
            :class:`DiffusionOperator`): they remove the high-frequency error a network trained on
            smooth data leaves, which otherwise stalls the Krylov solve (default 0).
    """

    def __init__(self, module: torch.nn.Module, A, *, channel_dim: bool = True, linear: bool = False,
                 smoothing: int = 0):
        if isinstance(smoothing, bool) or not isinstance(smoothing, int) or smoothing < 0:
            raise ValueError(f"smoothing must be a non-negative integer, got {smoothing!r}")
        if smoothing and not isinstance(A, DiffusionOperator):
            raise TypeError("smoothing needs the DiffusionOperator itself")
        self.smoothing = smoothing
        self._operator = A if smoothing else None
        self._jacobi = Jacobi(A) if smoothing else None
        if isinstance(A, DiffusionOperator):
            super().__init__(A.layout(0), True)
            self._mask = A.mask if A.batch_size > 1 else A.mask[0]
        else:
            _, layout, _ = _system(A, None)
            super().__init__(layout, False)
            self._mask = None
        self.module = module
        self.channel_dim = channel_dim
        self.linear = linear

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        param = next(iter(self.module.parameters()), None)
        dtype = param.dtype if param is not None else r.dtype
        device = param.device if param is not None else r.device
        single = self.grid_layout and tuple(r.shape) == self.layout.shape
        if single:  # one unbatched field
            return self(r.unsqueeze(0))[0]
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                x = r.to(device=device, dtype=dtype)
                out = self.module(x.unsqueeze(1) if self.channel_dim else x)
                out = out.squeeze(1) if self.channel_dim else out
        finally:
            self.module.train(was_training)
        if out.shape != r.shape:
            raise GridMismatchError(f"the module returned shape {tuple(out.shape)} for input {tuple(r.shape)}")
        out = out.to(device=r.device, dtype=r.dtype)
        if self._mask is not None:
            out = out * torch.as_tensor(self._mask, device=r.device, dtype=r.dtype)
        for _ in range(self.smoothing):
            out = out + (2.0 / 3.0) * self._jacobi(r - self._operator(out))
        return out


def __getattr__(name):
    # pdekit.precond.load moved to the learning layer (the core does not read checkpoints)
    if name == "load":
        import warnings

        warnings.warn("pdekit.precond.load moved to pdekit.learning.solvers.load", DeprecationWarning, stacklevel=2)
        from pdekit.learning.solvers import load

        return load
    raise AttributeError(f"module 'pdekit.precond' has no attribute {name!r}")
