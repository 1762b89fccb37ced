"""Reference solutions by a fine finite-difference solve, for analytic problems with no closed form
(the committor): −a Δu − b·∇u = f on a 2-D box minus balls, u = g on the balls, zero normal
derivative on the box faces (reflecting walls).

Nodes on the box including its faces, spacing h; second-order central differences for Δ and ∇;
on a face the ghost node mirrors its inner neighbour (∂u/∂n = 0, second order); nodes inside a
ball are Dirichlet nodes holding g (a staircase boundary: first order in h where the ball cuts
between nodes).  Sparse direct solve; bilinear interpolation between nodes.
"""
from __future__ import annotations

import numpy as np
import torch


def solve_box_with_holes(problem, spacing: float):
    """(axes, values on the node grid) for a 2-D ``problem`` whose domain is a
    :class:`pdekit.problems.domains.BoxWithHoles` with reflecting box faces."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    (x0, x1), (y0, y1) = problem.bounds
    nx, ny = int(round((x1 - x0) / spacing)) + 1, int(round((y1 - y0) / spacing)) + 1
    xs, ys = np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)
    hx, hy = xs[1] - xs[0], ys[1] - ys[0]
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    points = torch.as_tensor(np.stack([X.ravel(), Y.ravel()], -1))
    inside_hole = (problem.domain.hole_distance(points) <= 0).numpy()
    drift = problem.drift_at(points).numpy() if problem.drift is not None else np.zeros((len(points), 2))
    f = problem.source(points).numpy() if problem.source_fn is not None or problem.exact is not None \
        else np.zeros(len(points))
    a = problem.diffusion
    index = np.arange(nx * ny).reshape(nx, ny)
    rows, cols, vals = [], [], []
    rhs = np.zeros(nx * ny)
    free = ~inside_hole
    k = index.ravel()[free]
    i, j = np.unravel_index(k, (nx, ny))
    diagonal = np.full(len(k), 2 * a / hx**2 + 2 * a / hy**2)
    rows.append(k), cols.append(k), vals.append(diagonal)
    rhs[k] = f[k]
    for axis, h in ((0, hx), (1, hy)):
        n_axis = nx if axis == 0 else ny
        position = i if axis == 0 else j
        b = drift[k, axis]
        for side in (-1, 1):
            neighbour = position + side
            mirrored = np.where(neighbour < 0, 1, np.where(neighbour > n_axis - 1, n_axis - 2, neighbour))
            col = index[mirrored, j] if axis == 0 else index[i, mirrored]
            # −a (u₊ − 2u + u₋)/h² − b (u₊ − u₋)/(2h); a mirrored ghost is its inner neighbour
            rows.append(k), cols.append(col), vals.append(-a / h**2 - side * b / (2 * h))
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nx * ny,) * 2)
    fixed = np.nonzero(inside_hole)[0]
    g = np.zeros(nx * ny)
    if len(fixed):
        g[fixed] = problem.boundary(points[fixed]).numpy()
    unknown = np.nonzero(free)[0]
    A_free = A[unknown]
    b_vec = rhs[unknown] - A_free[:, fixed] @ g[fixed]
    u = g.copy()
    u[unknown] = spla.spsolve(A_free[:, unknown].tocsc(), b_vec)
    return (xs, ys), u.reshape(nx, ny)


class GridInterpolant:
    """Bilinear interpolation of node values (the reference solution as a callable of points)."""

    def __init__(self, axes, values):
        from scipy.interpolate import RegularGridInterpolator

        self._interpolate = RegularGridInterpolator(axes, values)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self._interpolate(x.detach().cpu().numpy()), dtype=torch.float64).to(x.device)
