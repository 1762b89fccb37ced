"""Turn whatever the user has (pdekit operator, scipy sparse matrix, torch matrix, callable) into
one thing the Krylov solvers use: a function mapping a batch ``(batch, *shape)`` to ``A x``."""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from pdekit.errors import GridMismatchError


class MatrixOperator:
    """A matrix (scipy sparse, numpy or torch, dense or sparse) acting on batches ``(batch, n)``."""

    def __init__(self, matrix):
        if sp.issparse(matrix):
            self._csr = sp.csr_matrix(matrix)
            self._dense = None
        elif isinstance(matrix, (np.ndarray, torch.Tensor)):
            self._csr = None
            self._dense = torch.as_tensor(matrix) if not isinstance(matrix, torch.Tensor) else matrix
            if self._dense.layout != torch.strided:
                self._dense = self._dense.to_dense()
        else:
            raise TypeError(f"cannot use {type(matrix).__name__} as a matrix")
        shape = self._csr.shape if self._csr is not None else tuple(self._dense.shape)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise GridMismatchError(f"the matrix must be square, got shape {shape}")
        self.n = int(shape[0])
        self._cache: dict = {}

    def _tensor(self, device, dtype):
        key = (str(device), dtype)
        if key not in self._cache:
            if self._csr is not None:
                m = self._csr
                with warnings.catch_warnings():  # torch flags CSR support as beta
                    warnings.simplefilter("ignore", UserWarning)
                    self._cache[key] = torch.sparse_csr_tensor(
                        torch.as_tensor(m.indptr, dtype=torch.int64), torch.as_tensor(m.indices, dtype=torch.int64),
                        torch.as_tensor(m.data, dtype=dtype), size=m.shape, check_invariants=False).to(device)
            else:
                self._cache[key] = self._dense.to(device=device, dtype=dtype)
        return self._cache[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n:
            raise GridMismatchError(f"vector of length {x.shape[-1]} for a {self.n}x{self.n} matrix")
        matrix = self._tensor(x.device, x.dtype)
        if x.dim() == 1:
            return (matrix @ x.unsqueeze(1)).squeeze(1)
        return (matrix @ x.reshape(-1, self.n).T).T.reshape(x.shape)


def as_operator(A) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable ``x -> A x`` on torch tensors, for any supported kind of ``A``."""
    if sp.issparse(A) or isinstance(A, np.ndarray) or (isinstance(A, torch.Tensor)):
        return MatrixOperator(A)
    if callable(A):
        return A
    raise TypeError(f"A must be a pdekit operator, a callable, or a (sparse) matrix; got {type(A).__name__}")
