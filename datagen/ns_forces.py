"""Forces on the obstacles of a staggered-grid channel flow (:mod:`datagen.ns_channel`).

Two evaluations, per obstacle:

* **Control volume** (the total force; second order): the momentum balance of a region of cells
  around the obstacle, ``F = -dM/dt - sum_faces h (Pi . n)`` with the momentum flux
  ``Pi = u u + p I - nu (grad u + grad u^T)`` (rho = 1) on the region's boundary faces and ``M`` the
  momentum inside it.  The boundary lies ``margin`` cells or more from the obstacle, where the
  fields are smooth, so face values (exact staggered ones where the grid has them, averages of
  cell centres otherwise) and central differences are second order, whatever the wall's shape.
  Regions of neighbouring obstacles split the fluid between them (nearest obstacle wins), so no
  region holds another obstacle.
* **Surface stresses** (the pressure and viscous parts): on each staircase face of the obstacle,
  the pressure extrapolated linearly from the two fluid cells along the normal, and the wall
  shear ``nu du_t/dn`` one-sided to second order from the same two cells (``(9 u_1 - u_2) / 3h``
  with the wall half a cell from the first); the normal viscous stress vanishes on a no-slip wall.
  On a staircase the geometry itself is first order, so these parts need not add up to the
  control-volume total; where a region cannot keep ``margin`` cells around its obstacle (an
  obstacle next to a wall or another obstacle), their sum is that obstacle's total.

Coefficients are ``2 F / (U_mean^2 D)`` with ``D`` the obstacle's frontal height.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


def control_volumes(labels: np.ndarray, margin: np.ndarray, border: int = 2):
    """Per obstacle ``k`` (labels ``k + 1``): the cells within ``margin[k]`` cells of it that are
    nearer to it than to any other obstacle and at least ``border`` cells inside the domain.
    Returns ``(regions (K, nx, ny) bool, complete (K,) bool)``; ``complete``: the region holds the
    obstacle with 2 cells of fluid around it, so its boundary faces see smooth fields."""
    count = int(labels.max())
    distance = np.stack([ndimage.distance_transform_edt(labels != k + 1) for k in range(count)])
    nearest = np.argmin(distance, axis=0)
    inside = np.zeros(labels.shape, bool)
    inside[border:-border, border:-border] = True
    regions = np.stack([(nearest == k) & (distance[k] <= margin[k]) & inside for k in range(count)])
    kernel = np.ones((5, 5), bool)
    complete = np.array([bool((regions[k] | ~ndimage.binary_dilation(labels == k + 1, kernel)).all())
                         for k in range(count)])
    return regions, complete


def _boundary_faces(regions: np.ndarray, axis: int):
    """Faces across ``axis`` where region membership changes: (obstacle, cell-index pair, outward
    sign).  Face index ``i`` along ``axis`` lies between cells ``i - 1`` and ``i``."""
    obstacles, faces, signs = [], [], []
    for k, region in enumerate(regions):
        r = region.astype(np.int8)
        change = np.diff(r, axis=axis)  # +1: outside -> inside going up the axis
        idx = np.argwhere(change != 0)
        sign = -change[change != 0].astype(float)  # inside on the upper side: the normal points down
        idx[:, axis] += 1
        obstacles.append(np.full(len(idx), k))
        faces.append(idx)
        signs.append(sign)
    return np.concatenate(obstacles), np.concatenate(faces), np.concatenate(signs)


class ForceEvaluator:
    """Precomputed control volumes and surface stencils of one obstacle configuration."""

    def __init__(self, labels: np.ndarray, h: float, frontal, *, margin_cells: int = 4, dtype=torch.float64,
                 device=None, cut_cells=None):
        self.h, self.count = h, int(labels.max()) if labels.size else 0
        self.dtype, self.device = dtype, torch.device(device or "cpu")
        t = lambda a, **kw: torch.as_tensor(np.ascontiguousarray(a), device=self.device, **kw)  # noqa: E731
        self.frontal = t(np.asarray(frontal, float), dtype=dtype)
        if self.count == 0:
            return
        margin = np.maximum(margin_cells, np.ceil(0.5 * np.asarray(frontal, float) / h))
        regions, self.complete = control_volumes(labels, margin)
        self.regions = t(regions, dtype=dtype)
        self.cv = {}
        for axis in (0, 1):
            obstacle, faces, sign = _boundary_faces(regions, axis)
            self.cv[axis] = (t(obstacle), t(faces[:, 0]), t(faces[:, 1]), t(sign, dtype=dtype))
        self._surface_stencil(labels)
        self.cut = None
        if cut_cells is not None:  # the true walls' pieces (datagen.cut_cells.CutCellGeometry)
            g = cut_cells
            u_open, v_open = g.u_open > 0, g.v_open > 0
            u_open[[0, -1]] = False  # the box's faces carry no pressure difference
            v_open[:, [0, -1]] = False
            self.cut = {"cells": t(g.wall_cells), "obstacle": t(g.wall_obstacle), "normal": t(g.wall_normal, dtype=dtype),
                        "offset": t(g.wall_offset, dtype=dtype), "u_open": t(u_open), "v_open": t(v_open)}

    def _surface_stencil(self, labels):
        """Per staircase face of an obstacle: the first and second fluid cells along the normal,
        the outward (into the fluid) normal, and the obstacle."""
        nx, ny = labels.shape
        rows = {"first": [], "second": [], "nx": [], "ny": [], "obstacle": []}
        for axis in (0, 1):
            for direction in (-1, 1):  # the fluid lies this way from the solid cell
                solid = np.argwhere(labels > 0)
                first = solid.copy()
                first[:, axis] += direction
                second = first.copy()
                second[:, axis] += direction
                size = labels.shape[axis]
                ok = (first[:, axis] >= 0) & (first[:, axis] < size)
                solid, first, second = solid[ok], first[ok], second[ok]
                ok = labels[first[:, 0], first[:, 1]] == 0
                solid, first, second = solid[ok], first[ok], second[ok]
                fluid_second = (second[:, axis] >= 0) & (second[:, axis] < size)
                fluid_second &= labels[np.clip(second[:, 0], 0, nx - 1), np.clip(second[:, 1], 0, ny - 1)] == 0
                second = np.where(fluid_second[:, None], second, first)  # one fluid cell: first order there
                rows["first"].append(np.ravel_multi_index(first.T, labels.shape))
                rows["second"].append(np.ravel_multi_index(second.T, labels.shape))
                rows["nx"].append(np.full(len(solid), float(direction if axis == 0 else 0)))
                rows["ny"].append(np.full(len(solid), float(direction if axis == 1 else 0)))
                rows["obstacle"].append(labels[solid[:, 0], solid[:, 1]] - 1)
        self.surface = {k: torch.as_tensor(np.concatenate(v), device=self.device) for k, v in rows.items()}
        self.surface["two_cells"] = (self.surface["first"] != self.surface["second"]).to(self.dtype)
        for k in ("nx", "ny"):
            self.surface[k] = self.surface[k].to(self.dtype)

    # ------------------------------------------------------------------ evaluation
    def momentum(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(K, 2): the momentum inside each control volume (cell-centred velocities, rho = 1)."""
        if self.count == 0:
            return torch.zeros(0, 2, dtype=self.dtype, device=self.device)
        uc, vc = 0.5 * (u[1:] + u[:-1]), 0.5 * (v[:, 1:] + v[:, :-1])
        return torch.stack([(self.regions * uc).sum((1, 2)), (self.regions * vc).sum((1, 2))], 1) * self.h**2

    def control_volume(self, u, v, p, nu: float, momentum_rate: torch.Tensor) -> torch.Tensor:
        """(K, 2): the force on each obstacle from its control volume's momentum balance."""
        h = self.h
        uc, vc = 0.5 * (u[1:] + u[:-1]), 0.5 * (v[:, 1:] + v[:, :-1])
        # vertical faces (i between cells i-1 and i): u exact; the rest from the two cells
        obstacle, i, j, sign = self.cv[0]
        uf = u[i, j]
        vf = 0.5 * (vc[i - 1, j] + vc[i, j])
        pf = 0.5 * (p[i - 1, j] + p[i, j])
        dudx = (u[i + 1, j] - u[i - 1, j]) / (2 * h)
        dudy = (u[i, j + 1] - u[i, j - 1]) / (2 * h)
        dvdx = (vc[i, j] - vc[i - 1, j]) / h
        flux_x = sign * (uf * uf + pf - 2 * nu * dudx)  # n = (sign, 0)
        flux_y = sign * (uf * vf - nu * (dudy + dvdx))
        fx = torch.zeros(self.count, dtype=self.dtype, device=self.device).index_add_(0, obstacle, flux_x)
        fy = torch.zeros(self.count, dtype=self.dtype, device=self.device).index_add_(0, obstacle, flux_y)
        # horizontal faces (j between cells j-1 and j): v exact
        obstacle, i, j, sign = self.cv[1]
        vf = v[i, j]
        uf = 0.5 * (uc[i, j - 1] + uc[i, j])
        pf = 0.5 * (p[i, j - 1] + p[i, j])
        dvdy = (v[i, j + 1] - v[i, j - 1]) / (2 * h)
        dvdx = (v[i + 1, j] - v[i - 1, j]) / (2 * h)
        dudy = (uc[i, j] - uc[i, j - 1]) / h
        fx.index_add_(0, obstacle, sign * (uf * vf - nu * (dudy + dvdx)))  # n = (0, sign)
        fy.index_add_(0, obstacle, sign * (vf * vf + pf - 2 * nu * dvdy))
        return -momentum_rate - h * torch.stack([fx, fy], 1)

    def surface_parts(self, u, v, p, nu: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, 2) pressure and (K, 2) viscous force from the stresses on the staircase faces."""
        s, h = self.surface, self.h
        uc = (0.5 * (u[1:] + u[:-1])).reshape(-1)
        vc = (0.5 * (v[:, 1:] + v[:, :-1])).reshape(-1)
        pf = p.reshape(-1)
        two = s["two_cells"]
        p_wall = (1 + 0.5 * two) * pf[s["first"]] - 0.5 * two * pf[s["second"]]
        # tangential velocity (the component along the face) at h/2 and 3h/2 from the wall
        tx, ty = s["ny"].abs(), s["nx"].abs()  # a face normal to y has x as its tangent
        t1 = tx * uc[s["first"]] + ty * vc[s["first"]]
        t2 = tx * uc[s["second"]] + ty * vc[s["second"]]
        shear = nu * torch.where(two > 0, (9 * t1 - t2) / (3 * h), 2 * t1 / h)  # nu du_t/dn at the wall
        zeros = lambda: torch.zeros(self.count, dtype=self.dtype, device=self.device)  # noqa: E731
        # pressure pushes the obstacle against the normal pointing into the fluid; shear drags it along
        pressure = torch.stack([zeros().index_add_(0, s["obstacle"], -p_wall * s["nx"] * h),
                                zeros().index_add_(0, s["obstacle"], -p_wall * s["ny"] * h)], 1)
        viscous = torch.stack([zeros().index_add_(0, s["obstacle"], shear * tx * h),
                               zeros().index_add_(0, s["obstacle"], shear * ty * h)], 1)
        return pressure, viscous

    def cut_cell_pressure(self, p) -> torch.Tensor:
        """(K, 2) pressure force on the true walls of cut cells: per cut cell, the pressure
        extrapolated linearly from its centre to its wall piece's midpoint (the gradient from the
        differences across its open faces) times the piece's integrated normal."""
        c, h = self.cut, self.h

        def gradient(open_faces, axis):  # per cell: the mean difference across its open faces
            faces = torch.nn.functional.pad(torch.diff(p, dim=axis) / h, (0, 0, 1, 1) if axis == 0 else (1, 1))
            faces = faces * open_faces  # every face of the grid; the box's are closed
            n = open_faces.shape[axis] - 1
            count = open_faces.narrow(axis, 0, n).to(p.dtype) + open_faces.narrow(axis, 1, n)
            return (faces.narrow(axis, 0, n) + faces.narrow(axis, 1, n)) / count.clamp_min(1)

        gx, gy = gradient(c["u_open"], 0), gradient(c["v_open"], 1)
        cells = c["cells"]
        p_wall = (p.reshape(-1)[cells] + gx.reshape(-1)[cells] * c["offset"][:, 0]
                  + gy.reshape(-1)[cells] * c["offset"][:, 1])
        force = p_wall[:, None] * c["normal"]  # the normal points into the obstacle: pressure pushes that way
        return torch.zeros(self.count, 2, dtype=p.dtype, device=p.device).index_add_(0, c["obstacle"], force)

    def coefficients(self, u, v, p, nu: float, u_mean: float, momentum_rate: torch.Tensor) -> dict:
        """Drag and lift coefficients per obstacle: ``drag``/``lift`` (control volume, or the surface
        sum where the region is incomplete) and their surface ``_pressure``/``_viscous`` parts."""
        if self.count == 0:
            empty = torch.zeros(0, dtype=self.dtype, device=self.device)
            return {k: empty for k in ("drag", "lift", "drag_pressure", "drag_viscous", "lift_pressure", "lift_viscous")}
        pressure, viscous = self.surface_parts(u, v, p, nu)
        total = self.control_volume(u, v, p, nu, momentum_rate)
        complete = torch.as_tensor(self.complete, device=self.device)[:, None]
        total = torch.where(complete, total, pressure + viscous)
        if self.cut is not None:  # true walls: the pressure part from the cut cells, the rest is viscous
            pressure = self.cut_cell_pressure(p)
            viscous = torch.where(complete, total - pressure, viscous)
        scale = (2.0 / (u_mean**2 * self.frontal))[:, None]
        total, pressure, viscous = total * scale, pressure * scale, viscous * scale
        return {"drag": total[:, 0], "lift": total[:, 1], "drag_pressure": pressure[:, 0],
                "drag_viscous": viscous[:, 0], "lift_pressure": pressure[:, 1], "lift_viscous": viscous[:, 1]}
