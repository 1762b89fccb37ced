"""The diffusion operator ``-div(a grad u)`` on a uniform grid, in two forms that agree exactly.

* matrix-free and batched: ``op(u)`` on torch tensors ``(batch, *shape)`` (float32/float64,
  CPU/CUDA; a few fused slice operations per axis, no loop over cells);
* assembled: ``op.to_sparse()``, a scipy CSR matrix over the active unknowns, symmetric positive
  definite once Dirichlet nodes are eliminated.

Discretisation (finite volumes on the nodes, second order): the flux through the face between
active neighbours ``i, j`` along axis ``k`` is ``a_f (u_j - u_i) / h_k`` with ``a_f`` the harmonic
mean of ``a_i, a_j``; a Dirichlet neighbour contributes ``a_i (g - u_i) / h_k`` (boundary at the
neighbour node); a Neumann neighbour contributes the prescribed flux at the shared face.  Rows
are divided by the cell volume, so with ``a = 1``, unit spacing and Dirichlet faces the matrix is
exactly ``pyamg.gallery.poisson``.  Boundary data moves to the right-hand side: ``op.rhs(f)``.

Both forms are built from the same stencil arrays (``diagonal``, ``face_weights``), so there is
one operator: the one a generator solves is the one a model's residual is measured with.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse.csgraph
import scipy.sparse as sp
import torch

from pdekit.boundary import ACTIVE, DIRICHLET, NEUMANN, BoundaryConditions
from pdekit.errors import (GridMismatchError, IncompatibleRHSError, InvalidCoefficientError,
                           NonFiniteError, SingularOperatorError)
from pdekit.grid import Grid
from pdekit.layout import Layout


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _take(array: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    index = [slice(None)] * array.ndim
    index[axis] = slice(start, stop)
    return array[tuple(index)]


def _harmonic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``2ab / (a + b)``; where the product overflows (a ~ 1e300), the equal ``2 / (1/a + 1/b)``."""
    plain = 2.0 * a * b / (a + b)
    return np.where(np.isfinite(plain) | ~(np.isfinite(a) & np.isfinite(b)), plain, 2.0 / (1.0 / a + 1.0 / b))


def _stencil(grid: Grid, a: np.ndarray, bc_type: np.ndarray, bc_value: np.ndarray, fractions=None):
    """Stencil arrays of one system: diagonal, interior face weights per axis, boundary RHS,
    per-node Dirichlet weight (to find floating regions), all float64 numpy.  ``fractions``: per
    axis, the open fraction of every face (``n_k + 1`` along axis ``k``), multiplying its flux."""
    interior = tuple(slice(1, -1) for _ in grid.shape)
    active = bc_type[interior] == ACTIVE
    a_padded = a
    a = np.where(active, a_padded[interior], 0.0)
    diag = np.zeros(grid.shape)
    dirichlet_weight = np.zeros(grid.shape)
    boundary_rhs = np.zeros(grid.shape)
    faces = []
    for k, h in enumerate(grid.spacing):
        n = grid.shape[k]
        al, ar = _take(a, k, 0, n - 1), _take(a, k, 1, n)
        both = _take(active, k, 0, n - 1) & _take(active, k, 1, n)
        open_fraction = np.ones(grid.shape[:k] + (n + 1,) + grid.shape[k + 1:]) if fractions is None else fractions[k]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            w = np.where(both, _harmonic(al, ar), 0.0) / h**2 * _take(open_fraction, k, 1, n)
        faces.append(w)
        # each interior face adds its weight to the diagonal of both of its nodes
        _take(diag, k, 0, n - 1)[...] += w
        _take(diag, k, 1, n)[...] += w
        for start in (0, 2):  # neighbour below (padded index i) and above (i + 2) along k
            index = list(interior)
            index[k] = slice(start, start + n)
            kind, value = bc_type[tuple(index)], bc_value[tuple(index)]
            dirichlet = active & (kind == DIRICHLET)
            neumann = active & (kind == NEUMANN)
            # wall face: harmonic mean with the Dirichlet node's coefficient where that is known
            # (positive), else the active node's own
            a_wall = a_padded[tuple(index)]
            known = np.isfinite(a_wall) & (a_wall > 0)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                a_face = np.where(known, _harmonic(a, a_wall), a)
            # the face between this node and that neighbour: index i (below) or i + 1 (above)
            face = _take(open_fraction, k, start // 2, start // 2 + n)
            dw = np.where(dirichlet, a_face / h**2, 0.0) * face
            diag += dw
            dirichlet_weight += dw
            boundary_rhs += dw * np.where(dirichlet, value, 0.0) + np.where(neumann, value / h, 0.0) * face
    return diag, faces, boundary_rhs, dirichlet_weight


def _couplings(active: np.ndarray, faces):
    """The active nodes' numbers (C order; -1 elsewhere) and the face couplings between them:
    ``(number, i, j, w)`` with ``w > 0`` the weight of the face between nodes ``i < j``."""
    number = np.full(active.shape, -1, dtype=np.int64)
    number[active] = np.arange(int(active.sum()))
    i, j, w = [], [], []
    for k, weight in enumerate(faces):
        n = active.shape[k]
        couple = weight > 0
        i.append(_take(number, k, 0, n - 1)[couple])
        j.append(_take(number, k, 1, n)[couple])
        w.append(weight[couple])
    return number, np.concatenate(i), np.concatenate(j), np.concatenate(w)


def _floating_components(grid: Grid, active: np.ndarray, faces, dirichlet_weight: np.ndarray):
    """Label array of connected active regions that touch no Dirichlet boundary (0 elsewhere).
    Nodes are connected through faces of positive weight (a face closed by ``face_fractions`` does
    not connect)."""
    labels = np.zeros(grid.shape, dtype=np.int64)
    size = int(active.sum())
    if size == 0:
        return labels, []
    _, i, j, _ = _couplings(active, faces)
    graph = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(size, size))
    count, component = scipy.sparse.csgraph.connected_components(graph, directed=False)
    labels[active] = component + 1  # numbered in order of their first node, like scipy.ndimage.label
    anchored = np.bincount(labels.ravel(), weights=(dirichlet_weight > 0).ravel(), minlength=count + 1)
    floating = [c for c in range(1, count + 1) if anchored[c] == 0]
    keep = np.isin(labels, floating)
    return np.where(keep, labels, 0), floating


class DiffusionOperator:
    """``-div(a grad u)`` with Dirichlet/Neumann conditions on box faces and obstacle walls.

    Args:
        grid: the :class:`~pdekit.grid.Grid`.
        coefficient: ``a > 0`` on active nodes, shape ``grid.shape`` or ``(batch, *grid.shape)``
            for a batch of systems (default 1).  It may also be given on the padded grid
            (``grid.coordinates(padded=True)``): values at Dirichlet nodes (ghost layer, obstacle
            nodes) then enter the wall faces by harmonic mean, which keeps variable-coefficient
            problems second order right up to the wall; non-positive values there mean unknown.
        mask: active nodes, same shapes (default: all active).
        bc: :class:`~pdekit.boundary.BoundaryConditions` (default homogeneous Dirichlet).
        face_fractions: cut cells (embedded boundaries): per axis, the open fraction in [0, 1] of
            every face across it (shape ``grid.shape`` with ``n_k + 1`` along axis ``k``, the box's
            faces included); each face's flux is scaled by it.  Rows are not divided by the cells'
            volume fractions, so the matrix stays symmetric (the variational / cut-cell pressure
            operator of Batty et al. 2007 and Ng, Min & Gibou 2009).  A face of fraction 0 carries
            no flux (a Neumann wall through the cell).
        singular: what to do with a region that touches no Dirichlet boundary (a pure-Neumann
            problem, whose matrix is singular): ``"error"`` (default) raises
            :class:`SingularOperatorError`; ``"pin"`` fixes the first node of each such region to 0,
            which removes the constant null space and keeps the matrix SPD.  The right-hand side
            must then be compatible (see :meth:`rhs`).
        dtype, device: of the cached torch stencil used when no tensor decides it.

    Use :meth:`from_arrays` to build from stored ``bc_type``/``bc_value`` arrays.
    """

    def __init__(self, grid: Grid, coefficient=None, mask=None, bc: BoundaryConditions | None = None,
                 *, singular: str = "error", face_fractions=None):
        bc = bc if bc is not None else BoundaryConditions()
        coefficient = None if coefficient is None else _to_numpy(coefficient)
        mask = None if mask is None else _to_numpy(mask)
        batch = None
        if mask is not None:
            grid.check_field(mask, "mask")
        for name, arr in (("coefficient", coefficient), ("mask", mask)):
            if arr is not None:
                if arr.ndim == grid.ndim + 1:
                    if batch is not None and batch != arr.shape[0]:
                        raise GridMismatchError(f"coefficient batch {batch} and mask batch {arr.shape[0]} differ")
                    batch = arr.shape[0]
        m = None if mask is None else _to_numpy(mask).astype(bool)
        if m is None or m.ndim == grid.ndim:
            bc_type, bc_value = bc.to_arrays(grid, m)
        else:  # one mask per system
            pairs = [bc.to_arrays(grid, mi) for mi in m]
            bc_type = np.stack([p[0] for p in pairs])
            bc_value = np.stack([p[1] for p in pairs])
        self._init(grid, coefficient, bc_type, bc_value, singular, face_fractions)

    @classmethod
    def from_arrays(cls, grid, coefficient, bc_type, bc_value, *, singular: str = "error",
                    face_fractions=None):
        """Build from padded ``bc_type``/``bc_value`` arrays (as stored in datasets).

        ``grid`` is one :class:`~pdekit.grid.Grid`, or one per system (same shape, spacings may
        differ: a batch mixing files of several levels); ``op.grid`` is then the first, and
        ``op.grids`` lists them all."""
        self = cls.__new__(cls)
        self._init(grid, coefficient, bc_type, bc_value, singular, face_fractions)
        return self

    @staticmethod
    def _check_fractions(grid: Grid, fractions):
        if fractions is None:
            return None
        fractions = [np.asarray(_to_numpy(f), dtype=np.float64) for f in fractions]
        if len(fractions) != grid.ndim:
            raise GridMismatchError(f"face_fractions needs one array per axis ({grid.ndim}), got {len(fractions)}")
        for k, f in enumerate(fractions):
            expected = grid.shape[:k] + (grid.shape[k] + 1,) + grid.shape[k + 1:]
            if f.shape != expected:
                raise GridMismatchError(f"face_fractions[{k}] has shape {f.shape}, expected {expected} "
                                        f"(every face across axis {k}, the box's included)")
            if not (np.isfinite(f).all() and (f >= 0).all() and (f <= 1).all()):
                raise ValueError(f"face_fractions[{k}] must lie in [0, 1]")
        return fractions

    # ------------------------------------------------------------------ construction
    def _init(self, grid, coefficient, bc_type, bc_value, singular, face_fractions=None):
        if singular not in ("error", "pin"):
            raise ValueError(f"singular must be 'error' or 'pin', got {singular!r}")
        per_system = None
        if not isinstance(grid, Grid):  # one grid per system
            per_system = list(grid)
            if not per_system or not all(isinstance(g, Grid) for g in per_system):
                raise TypeError("grid must be a Grid or a non-empty sequence of Grids (one per system)")
            if len({g.shape for g in per_system}) != 1:
                raise GridMismatchError(f"per-system grids differ in shape: {sorted({g.shape for g in per_system})}")
            grid = per_system[0]
        self.grid = grid
        self.face_fractions = fractions = self._check_fractions(grid, face_fractions)
        padded = tuple(n + 2 for n in grid.shape)
        bc_type = _to_numpy(bc_type).astype(np.int8)
        bc_value = _to_numpy(bc_value).astype(np.float64)
        for name, arr in (("bc_type", bc_type), ("bc_value", bc_value)):
            if arr.shape[-grid.ndim:] != padded or arr.ndim not in (grid.ndim, grid.ndim + 1):
                raise GridMismatchError(f"{name} has shape {arr.shape}, expected the padded grid {padded}"
                                        f" (optionally with a leading batch axis)")
        if not np.isin(bc_type, (ACTIVE, DIRICHLET, NEUMANN)).all():
            raise ValueError("bc_type holds codes other than 0 (active), 1 (Dirichlet), 2 (Neumann)")
        if not np.all(np.isfinite(bc_value)):
            raise NonFiniteError("boundary values contain NaN or Inf")
        if coefficient is not None and np.iscomplexobj(_to_numpy(coefficient)):
            raise InvalidCoefficientError("coefficient is complex; a must be real and positive")
        a = np.ones(grid.shape) if coefficient is None else _to_numpy(coefficient).astype(np.float64)
        if a.shape[-grid.ndim:] != padded:
            grid.check_field(a, "coefficient")
            # ghost-layer coefficient unknown: copy the edge (wall faces then use the node's own a)
            pad = [(0, 0)] * (a.ndim - grid.ndim) + [(1, 1)] * grid.ndim
            a = np.pad(a, pad, mode="edge")
        elif a.ndim not in (grid.ndim, grid.ndim + 1):
            raise GridMismatchError(f"coefficient has shape {a.shape}, expected {grid.shape} or padded {padded}")
        batch = max(x.shape[0] if x.ndim == grid.ndim + 1 else 1 for x in (a, bc_type, bc_value))
        for name, arr, nd in (("coefficient", a, grid.ndim), ("bc_type", bc_type, grid.ndim),
                              ("bc_value", bc_value, grid.ndim)):
            if arr.ndim == nd + 1 and arr.shape[0] not in (1, batch):
                raise GridMismatchError(f"{name} has batch {arr.shape[0]}, others have {batch}")
        a = np.broadcast_to(a, (batch,) + padded) if a.ndim == grid.ndim or a.shape[0] == 1 else a
        bc_type = np.array(np.broadcast_to(bc_type, (batch,) + padded))
        bc_value = np.array(np.broadcast_to(bc_value, (batch,) + padded))
        if per_system is not None and len(per_system) not in (1, batch):
            raise GridMismatchError(f"{len(per_system)} grids given for {batch} systems")
        self.grids = per_system * batch if per_system is not None and len(per_system) == 1 else \
            (per_system or [grid] * batch)
        interior = (slice(None),) + tuple(slice(1, -1) for _ in grid.shape)
        user_active = bc_type[interior] == ACTIVE
        a_interior = a[interior]
        bad = user_active & ~(np.isfinite(a_interior) & (a_interior > 0))
        if bad.any():
            idx = np.argwhere(bad)[0]
            raise InvalidCoefficientError(
                f"coefficient must be positive and finite on active nodes; {int(bad.sum())} node(s) are not, "
                f"first at sample {idx[0]}, index {tuple(int(i) for i in idx[1:])}: value {a_interior[tuple(idx)]!r}")

        diags, faces, brhs, floating_labels, unpinned_rhs = [], [], [], [], []
        for s in range(batch):
            d, f, b, dw = _stencil(self.grids[s], a[s], bc_type[s], bc_value[s], fractions)
            labels, floating = _floating_components(grid, user_active[s], f, dw)
            if floating:
                if singular == "error":
                    where = tuple(int(i) for i in np.argwhere(labels == floating[0])[0])
                    raise SingularOperatorError(
                        f"{len(floating)} connected region(s) of unknowns touch no Dirichlet boundary "
                        f"(sample {s}, first region contains node {where}, {int((labels == floating[0]).sum())} nodes): "
                        "the system is singular (pure Neumann). Add a Dirichlet boundary, or pass "
                        "singular='pin' with a compatible right-hand side.")
                # pin: the first node of each floating region becomes a Dirichlet node with value 0
                pinned_type = bc_type[s].copy()
                pinned_value = bc_value[s].copy()
                for c in floating:
                    first = np.argwhere(labels == c)[0] + 1
                    pinned_type[tuple(first)] = DIRICHLET
                    pinned_value[tuple(first)] = 0.0
                unpinned_rhs.append(b)
                bc_type[s], bc_value[s] = pinned_type, pinned_value
                d, f, b, _ = _stencil(self.grids[s], a[s], pinned_type, pinned_value, fractions)
            else:
                unpinned_rhs.append(None)
            if not (np.isfinite(d).all() and all(np.isfinite(w).all() for w in f)):
                raise InvalidCoefficientError(
                    f"the stencil of system {s} overflows float64 (coefficient up to {np.nanmax(a[s]):.3g} over "
                    f"spacing {min(self.grids[s].spacing):.3g}): rescale a")
            diags.append(d)
            faces.append(f)
            brhs.append(b)
            floating_labels.append(labels)

        self.batch_size = batch
        self.bc_type, self.bc_value = bc_type, bc_value  # after pinning
        self.coefficient = np.array(a)
        self.mask = bc_type[interior] == ACTIVE  # the unknowns (pinned nodes excluded)
        self.domain_mask = user_active
        self.diagonal = np.stack(diags)
        self.face_weights = [np.stack([f[k] for f in faces]) for k in range(grid.ndim)]
        self.boundary_rhs = np.stack(brhs)
        self._floating = floating_labels
        self._unpinned_rhs = unpinned_rhs
        self._cache: dict = {}

    @property
    def floating_regions(self) -> np.ndarray:
        """Labels ``(systems, *shape)`` of connected regions that touch no Dirichlet boundary
        (pinned when ``singular="pin"``); 0 elsewhere."""
        return np.stack(self._floating)

    # ------------------------------------------------------------------ torch form
    @property
    def ndim(self) -> int:
        return self.grid.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return self.grid.shape

    def _tensors(self, device, dtype):
        key = (str(device), dtype)
        if key not in self._cache:
            t = lambda x: torch.as_tensor(x, dtype=dtype, device=device)  # noqa: E731
            self._cache[key] = (t(self.diagonal), [t(w) for w in self.face_weights],
                                t(self.boundary_rhs), torch.as_tensor(self.mask, device=device))
        return self._cache[key]

    def _batched(self, u: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
        if not isinstance(u, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(u).__name__}")
        single = u.dim() == self.ndim
        if tuple(u.shape[-self.ndim:]) != self.shape or u.dim() not in (self.ndim, self.ndim + 1):
            raise GridMismatchError(f"{name} has shape {tuple(u.shape)}, expected {self.shape} "
                                    f"or (batch, *{self.shape})")
        u = u.unsqueeze(0) if single else u
        if u.is_complex():
            raise TypeError(f"{name} is complex; the operator acts on real fields")
        if not u.is_floating_point():  # integers (or bools) would be applied in integer arithmetic
            u = u.to(torch.float64)
        if self.batch_size > 1 and u.shape[0] != self.batch_size:
            raise GridMismatchError(f"{name} has batch {u.shape[0]} but the operator holds "
                                    f"{self.batch_size} systems")
        return u, single

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """``A u`` for ``u`` of shape ``(batch, *shape)`` or ``shape``; inactive entries of ``u`` are
        ignored (they must be finite) and those of the result are zero.  Differentiable."""
        u, single = self._batched(u, "u")
        diag, faces, _, _ = self._tensors(u.device, u.dtype)
        chunk = self._cpu_chunk(u)
        if chunk is None:
            out = self._apply(u, diag, faces, diag * u)
        else:  # large CPU batch: apply block by block so each block stays in cache
            out = torch.empty_like(u)
            for start in range(0, u.shape[0], chunk):
                part = slice(start, start + chunk)
                d = diag[part] if self.batch_size > 1 else diag
                w = [f[part] for f in faces] if self.batch_size > 1 else faces
                self._apply(u[part], d, w, torch.mul(d, u[part], out=out[part]))
        return out[0] if single else out

    _CPU_BLOCK_BYTES = 4 << 20

    def _cpu_chunk(self, u: torch.Tensor) -> int | None:
        if u.device.type != "cpu" or (u.requires_grad and torch.is_grad_enabled()):
            return None
        chunk = max(1, self._CPU_BLOCK_BYTES // (u[0].numel() * u.element_size()))
        return chunk if chunk < u.shape[0] else None

    def _apply(self, u, diag, faces, out):
        """Add the off-diagonal couplings to ``out = diag * u`` in place."""
        for k, w in enumerate(faces):
            axis, n = k + 1, self.shape[k]
            out.narrow(axis, 0, n - 1).addcmul_(w, u.narrow(axis, 1, n - 1), value=-1.0)
            out.narrow(axis, 1, n - 1).addcmul_(w, u.narrow(axis, 0, n - 1), value=-1.0)
        return out

    matvec = __call__

    def rhs(self, f, *, compatibility: str = "check", device=None, dtype=torch.float64) -> torch.Tensor:
        """Right-hand side ``b`` of ``A u = b`` for source ``f``: ``f`` on active nodes plus the
        boundary data.  ``f`` may be numpy or torch, shape ``shape`` or ``(batch, *shape)``.

        For pinned (pure-Neumann) regions the continuous problem has a solution only if the
        sources and boundary fluxes balance.  ``compatibility="check"`` raises
        :class:`IncompatibleRHSError` when they do not; ``"project"`` subtracts each region's mean
        (the usual fix for sampled sources, which balance only up to discretisation error).
        """
        if isinstance(f, torch.Tensor):
            device = f.device if device is None else device
            dtype = f.dtype if f.is_floating_point() else dtype
        f = torch.as_tensor(f, dtype=dtype, device=device)
        if not torch.isfinite(f).all():
            raise NonFiniteError("right-hand side f contains NaN or Inf")
        f, single = self._batched(f, "f")
        _, _, brhs, mask = self._tensors(f.device, f.dtype)
        b = torch.where(mask, f, torch.zeros((), dtype=f.dtype, device=f.device)) + brhs
        b = self._compatible(f, b, compatibility)
        return b[0] if single else b

    def _compatible(self, f, b, mode):
        if mode not in ("check", "project"):
            raise ValueError(f"compatibility must be 'check' or 'project', got {mode!r}")
        if all(u is None for u in self._unpinned_rhs):
            return b
        b = b.clone()
        for s in range(b.shape[0]):
            op_s = s if self.batch_size > 1 else 0
            labels = self._floating[op_s]
            for c in np.unique(labels[labels > 0]):
                region = torch.as_tensor(labels == c, device=b.device)
                full = f[s][region] + torch.as_tensor(self._unpinned_rhs[op_s][labels == c],
                                                      dtype=b.dtype, device=b.device)
                total, scale = full.sum(), full.abs().sum().clamp_min(torch.finfo(b.dtype).tiny)
                if mode == "check" and abs(float(total)) > 1e-8 * float(scale):
                    raise IncompatibleRHSError(
                        f"pure-Neumann region {int(c)} of sample {s}: sources and boundary fluxes sum to "
                        f"{float(total):.3e} (relative {float(total / scale):.1e}), so no solution exists. "
                        "Pass compatibility='project' to remove the mean.")
                mean = full.mean()
                # the region's pinned node is not an unknown; shift the rest by the region mean
                unknown = region & torch.as_tensor(self.mask[op_s], device=b.device)
                b[s][unknown] = b[s][unknown] - mean
        return b

    def residual(self, u: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``b - A u``."""
        return b - self(u)

    def relative_residual(self, u: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``||b - A u|| / ||b||`` per system."""
        r, single = self._batched(self.residual(u, b), "u")
        b, _ = self._batched(b, "b")
        value = r.flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1).clamp_min(torch.finfo(b.dtype).tiny)
        return value[0] if single else value

    def full_field(self, u: torch.Tensor) -> torch.Tensor:
        """``u`` with Dirichlet values filled in at inactive Dirichlet nodes (NaN at Neumann-walled
        obstacle nodes), for plotting and comparison with exact solutions."""
        u, single = self._batched(u, "u")
        interior = (slice(None),) + tuple(slice(1, -1) for _ in self.shape)
        kind = torch.as_tensor(self.bc_type[interior], device=u.device)
        value = torch.as_tensor(self.bc_value[interior], dtype=u.dtype, device=u.device)
        out = torch.where(kind == DIRICHLET, value, u)
        out = torch.where(kind == NEUMANN, torch.full_like(u, float("nan")), out)
        return out[0] if single else out

    # ------------------------------------------------------------------ assembled form
    def layout(self, index: int = 0) -> Layout:
        """Field ↔ active-vector mapping of system ``index``."""
        return Layout(self.shape, self.mask[index])

    def to_sparse(self, index: int = 0) -> sp.csr_matrix:
        """The CSR matrix of system ``index`` over its active unknowns (C order), SPD."""
        if not 0 <= index < self.batch_size:
            raise IndexError(f"system {index} out of range for an operator holding {self.batch_size}")
        mask = self.mask[index]
        number, i, j, w = _couplings(mask, [w[index] for w in self.face_weights])
        size = int(mask.sum())
        rows, cols = np.concatenate([number[mask], i, j]), np.concatenate([number[mask], j, i])
        vals = np.concatenate([self.diagonal[index][mask], -w, -w])
        matrix = sp.coo_matrix((vals, (rows, cols)), shape=(size, size))
        return matrix.tocsr()

    def __repr__(self) -> str:
        return (f"DiffusionOperator(shape={self.shape}, spacing={self.grid.spacing}, "
                f"systems={self.batch_size}, unknowns={int(self.mask[0].sum())})")
