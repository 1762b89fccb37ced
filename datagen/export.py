"""Export datasets to ParaView through meshio: an XDMF series (one step per sample, or per time
snapshot) or one VTU file per frame, on the structured quad/hex mesh of the grid's nodes.

Both are written into a temporary folder beside the target and moved into place at the end, so
an interrupted export leaves no half-written files under the final names.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pdekit.data import grid_of, open_poisson

FORMATS = ("xdmf", "vtu")


def structured_mesh(grid):
    """Points (node coordinates, C order) and cells (quads in 2D, hexahedra in 3D) of a grid."""
    coords = grid.coordinates()
    points = np.stack([c.ravel() for c in coords], axis=1)
    if grid.ndim == 2:
        points = np.concatenate([points, np.zeros((len(points), 1))], axis=1)  # ParaView wants 3-D points
    index = np.arange(points.shape[0]).reshape(grid.shape)
    if grid.ndim == 2:
        corners = [index[:-1, :-1], index[1:, :-1], index[1:, 1:], index[:-1, 1:]]
        return points, [("quad", np.stack([c.ravel() for c in corners], axis=1))]
    if grid.ndim == 3:
        bottom = [index[:-1, :-1, :-1], index[1:, :-1, :-1], index[1:, 1:, :-1], index[:-1, 1:, :-1]]
        top = [c for c in (index[:-1, :-1, 1:], index[1:, :-1, 1:], index[1:, 1:, 1:], index[:-1, 1:, 1:])]
        return points, [("hexahedron", np.stack([c.ravel() for c in bottom + top], axis=1))]
    raise ValueError(f"export needs a 2-D or 3-D grid, got {grid.ndim}-D")


def _flat(fields: dict) -> dict:
    return {k: np.asarray(v).ravel() for k, v in fields.items()}  # point data in the points' C order


@contextmanager
def _staging(folder: Path):
    """A temporary folder in ``folder`` (same filesystem, so moves out of it are renames)."""
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".export_"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_xdmf_series(out: Path, grid, frames) -> list[Path]:
    """``frames``: iterable of ``(t, {name: array on the grid})``.  Writes ``out`` (.xdmf) and its
    companion ``.h5`` holding the arrays."""
    import meshio

    out = Path(out)
    points, cells = structured_mesh(grid)
    with _staging(out.resolve().parent) as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # meshio writes the companion .h5 into the working folder
        try:
            with meshio.xdmf.TimeSeriesWriter(out.name) as writer:
                writer.write_points_cells(points, cells)
                for t, fields in frames:
                    writer.write_data(t, point_data=_flat(fields))
        finally:
            os.chdir(cwd)
        companion = out.with_suffix(".h5")
        os.replace(tmp / companion.name, companion)  # data first: the .xdmf never points at nothing
        os.replace(tmp / out.name, out)
    return [out, companion]


def write_vtu_frames(folder: Path, grid, frames, stem: str = "frame") -> list[Path]:
    """One ``<stem>_NNNN.vtu`` per frame plus ``<stem>.pvd`` (the series) in ``folder``, created
    or replaced as a whole."""
    import meshio

    folder = Path(folder)
    points, cells = structured_mesh(grid)
    written, entries = [], []
    with _staging(folder.resolve().parent) as tmp:
        for i, (t, fields) in enumerate(frames):
            name = f"{stem}_{i:04d}.vtu"
            meshio.write(tmp / name, meshio.Mesh(points, cells, point_data=_flat(fields)))
            written.append(folder / name)
            entries.append(f'    <DataSet timestep="{t!r}" part="0" file="{name}"/>')
        # meshio has no .pvd writer: this small collection lets ParaView open the frames as one series
        (tmp / f"{stem}.pvd").write_text('<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1">\n'
                                         "  <Collection>\n" + "\n".join(entries) + "\n  </Collection>\n</VTKFile>\n")
        written.insert(0, folder / f"{stem}.pvd")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)  # the staging folder becomes the result (its cleanup finds nothing)
        umask = os.umask(0)
        os.umask(umask)
        folder.chmod(0o777 & ~umask)  # mkdtemp made it private
    return written


def export_poisson(path, fmt: str, out=None, samples: int = 16) -> list[Path]:
    """Export the first ``samples`` samples of a Poisson file (fields a, f, u, mask; the sample
    index is the XDMF "time")."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    path = Path(path)
    out = Path(out) if out else path.with_name(path.stem + ("-paraview.xdmf" if fmt == "xdmf" else "-paraview"))
    if fmt == "xdmf" and out.with_suffix(".h5").resolve() == path.resolve():
        raise ValueError(f"{out} would write its data to {path}, the input; choose another --out")
    with open_poisson(path) as h5:
        grid = grid_of(h5)
        count = min(samples, h5["u"].shape[0])
        frames = ((float(i), {"a": h5["a"][i], "f": h5["f"][i], "u": h5["u"][i],
                              "mask": h5["mask"][i].astype(np.uint8)}) for i in range(count))
        if fmt == "xdmf":
            return write_xdmf_series(out, grid, frames)
        return write_vtu_frames(out, grid, frames, stem="sample")
