"""Mapping between grid fields ``(batch, *shape)`` and vectors of active unknowns ``(batch, n)``.

Torch solvers work on grid fields (inactive entries held at zero); scipy works on vectors of
the active unknowns only.  A :class:`Layout` converts between the two, for torch and numpy.
"""
from __future__ import annotations

import numpy as np
import torch

from pdekit.errors import GridMismatchError


class Layout:
    """``shape``: the field shape; ``active``: boolean array of that shape (None: all active)."""

    def __init__(self, shape: tuple[int, ...], active: np.ndarray | None = None):
        self.shape = tuple(int(s) for s in shape)
        if active is None:
            self.index = None
            self.n = int(np.prod(self.shape))
        else:
            active = np.asarray(active, dtype=bool)
            if active.shape != self.shape:
                raise GridMismatchError(f"active mask has shape {active.shape}, expected {self.shape}")
            self.index = np.flatnonzero(active)
            self.n = int(self.index.size)
        self._torch_index: dict = {}

    @property
    def is_identity(self) -> bool:
        return self.index is None

    def _check(self, x, name: str) -> bool:
        """True when ``x`` is unbatched."""
        shape = tuple(x.shape)
        if shape == self.shape:
            return True
        if shape[1:] == self.shape:
            return False
        raise GridMismatchError(f"{name} has shape {shape}, expected {self.shape} or (batch, *{self.shape})")

    def _tindex(self, device) -> torch.Tensor:
        key = str(device)
        if key not in self._torch_index:
            self._torch_index[key] = torch.as_tensor(self.index, device=device)
        return self._torch_index[key]

    def to_vectors(self, field: torch.Tensor) -> torch.Tensor:
        """``(batch, *shape)`` → ``(batch, n)`` (unbatched in, unbatched out)."""
        single = self._check(field, "field")
        flat = field.reshape(-1 if not single else 1, int(np.prod(self.shape)))
        out = flat if self.index is None else flat.index_select(1, self._tindex(field.device))
        return out[0] if single else out

    def to_fields(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(batch, n)`` → ``(batch, *shape)`` with zeros at inactive entries."""
        single = vectors.dim() == 1
        v = vectors.reshape(1, -1) if single else vectors
        if v.shape[-1] != self.n:
            raise GridMismatchError(f"vector has {v.shape[-1]} entries, the layout has {self.n} unknowns")
        if self.index is None:
            out = v.reshape(v.shape[0], *self.shape)
        else:
            out = v.new_zeros(v.shape[0], int(np.prod(self.shape)))
            out[:, self._tindex(v.device)] = v
            out = out.reshape(v.shape[0], *self.shape)
        return out[0] if single else out

    # numpy versions for scipy.sparse.linalg, which works on active vectors
    def to_vectors_np(self, field: np.ndarray) -> np.ndarray:
        return self.to_vectors(torch.from_numpy(np.ascontiguousarray(field))).numpy()

    def to_fields_np(self, vectors: np.ndarray) -> np.ndarray:
        return self.to_fields(torch.from_numpy(np.ascontiguousarray(vectors))).numpy()
