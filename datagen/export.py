"""Export datasets to ParaView through meshio (and, via :mod:`datagen.well`, to The Well's layout): an XDMF series (one step per sample, or per time
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

from pdekit import Grid
from pdekit.files.dataset import LABELS_PDE, grid_of, is_timeseries, open_dataset, open_poisson

FORMATS = ("xdmf", "vtu")


def structured_mesh(grid):
    """Points (node coordinates, C order) and cells (lines in 1D, quads in 2D, hexahedra in 3D)."""
    coords = grid.coordinates()
    points = np.stack([c.ravel() for c in coords], axis=1)
    if grid.ndim == 1:  # a polyline
        points = np.concatenate([points, np.zeros((len(points), 2))], axis=1)
        index = np.arange(len(points))
        return points, [("line", np.stack([index[:-1], index[1:]], axis=1))]
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
    raise ValueError(f"export needs a 1-D, 2-D or 3-D grid, got {grid.ndim}-D")


def _flat(fields: dict) -> dict:
    """Point data in the points' C order; vectors come as (points, 3) already."""
    return {k: (v if np.ndim(v) == 2 and np.shape(v)[1] == 3 else np.asarray(v).ravel()) for k, v in fields.items()}


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


def check_output(out: Path, source: Path, *, folder: bool, overwrite: bool, replaces: bool = True) -> None:
    """Refuse an output that would destroy what the command did not make: an existing path without
    ``--overwrite``, a link or special file, the working folder, or a folder holding the input.
    ``replaces``: whether writing replaces ``out`` as a whole (a VTU folder) or only adds files to it."""
    out, source = Path(out), Path(source)
    if out.is_symlink():
        raise ValueError(f"--out {out} is a symbolic link; give the real path")
    if out.exists():
        if folder and not out.is_dir():
            raise ValueError(f"--out {out} is not a folder")
        if not folder and not out.is_file():
            raise ValueError(f"--out {out} is not a regular file")
    if folder:
        resolved = out.resolve()
        if resolved == Path.cwd().resolve() or resolved == Path(resolved.anchor):
            raise ValueError(f"--out {out} is the working folder (or /); give a folder of its own")
        if resolved in source.resolve().parents:
            raise ValueError(f"--out {out} contains the input {source}; give another folder")
    if out.exists() and replaces and not overwrite:
        raise ValueError(f"--out {out} exists; add --overwrite to replace it")


def _target(path: Path, fmt: str, out, stem: str, overwrite: bool = False) -> Path:
    """Checked output path: ``out``, else ``<stem>-paraview.xdmf`` / folder ``<stem>-paraview``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    out = Path(out) if out else path.with_name(stem + ("-paraview.xdmf" if fmt == "xdmf" else "-paraview"))
    if fmt == "xdmf":
        companion = out.with_suffix(".h5")
        for target in (out, companion):
            if target.resolve() == path.resolve():
                raise ValueError(f"{out} would write {target.name} over the input {path}; choose another --out")
        if companion.exists() and not out.exists():  # then that .h5 is not an earlier export's data
            raise ValueError(f"{out} would write its data to {companion}, which exists and is not its own; "
                             "choose another --out")
        for target in (out, companion):
            check_output(target, path, folder=False, overwrite=overwrite)
    else:
        check_output(out, path, folder=True, overwrite=overwrite)
    return out


def export_poisson(path, fmt: str, out=None, samples: int = 16, overwrite: bool = False) -> list[Path]:
    """Export the first ``samples`` samples of a Poisson file (fields a, f, u, mask; the sample
    index is the XDMF "time")."""
    path = Path(path)
    out = _target(path, fmt, out, path.stem, overwrite)
    with open_poisson(path) as h5:
        grid = grid_of(h5)
        count = min(samples, h5["u"].shape[0])
        frames = ((float(i), {"a": h5["a"][i], "f": h5["f"][i], "u": h5["u"][i],
                              "mask": h5["mask"][i].astype(np.uint8)}) for i in range(count))
        if fmt == "xdmf":
            return write_xdmf_series(out, grid, frames)
        return write_vtu_frames(out, grid, frames, stem="sample")


def export(path, fmt: str, out=None, samples: int = 16, trajectory: int = 0, *, overwrite: bool = False,
           split=(0.8, 0.1, 0.1), seed: int = 0) -> list[Path]:
    """Poisson files: the first ``samples`` samples; time series: the snapshots of one trajectory
    with their times (vector fields as 3-component point data, as ParaView expects).
    ``fmt="the-well"``: every trajectory in The Well's layout (:mod:`datagen.well`), split into
    train/valid/test by trajectory (``split`` fractions, ``seed``).  Nothing existing is replaced
    without ``overwrite``."""
    with open_dataset(path) as h5:
        timeseries, pde = is_timeseries(h5), h5.attrs["pde"]
    if pde == LABELS_PDE:
        raise ValueError(f"{path} holds pointwise Feynman–Kac labels, not fields on a grid: nothing to export "
                         "(read points, value and stderr with h5py)")
    if fmt == "the-well":
        from datagen.well import export_the_well

        return export_the_well(path, out, split=split, seed=seed, overwrite=overwrite)
    if not timeseries:
        return export_poisson(path, fmt, out, samples, overwrite)
    path = Path(path)
    out = _target(path, fmt, out, f"{path.stem}-trajectory{trajectory}", overwrite)
    with open_dataset(path) as h5:
        n = h5["level"].shape[0]
        if not 0 <= trajectory < n:
            raise ValueError(f"--trajectory {trajectory} out of range: the file has {n} samples")
        fields = [str(f) for f in h5.attrs["fields"]]
        dim = int(h5.attrs["dim"])
        shape = h5[fields[0]].shape[-dim:]
        origin = tuple(h5.attrs["origin"]) if "origin" in h5.attrs else 0.0
        grid = Grid(shape, spacing=tuple(h5.attrs["spacing"]), origin=origin)
        mask = h5["mask"][trajectory].astype(np.uint8) if "mask" in h5 else None

        def frame(j):
            data = {}
            for name in fields:
                value = h5[name][trajectory, j]
                if value.ndim == dim + 1:  # components first: to (points..., 3)
                    value = np.moveaxis(value, 0, -1)
                    value = np.concatenate([value, np.zeros(value.shape[:-1] + (3 - value.shape[-1],))], axis=-1)
                    value = value.reshape(-1, 3)
                data[name] = value
            if mask is not None:
                data["mask"] = mask
            return data

        frames = ((float(t), frame(j)) for j, t in enumerate(h5["t"][()]))
        if fmt == "xdmf":
            return write_xdmf_series(out, grid, frames)
        return write_vtu_frames(out, grid, frames, stem="snapshot")
