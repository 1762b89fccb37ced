"""Export a pdekit time-series dataset in The Well's HDF5 layout (Ohana et al., NeurIPS 2024
Datasets and Benchmarks; PyPI ``the-well``), so that ``the_well.data.WellDataset(path=folder)``
and neuraloperator's ``TheWellDataset`` read it unchanged.

Field mapping (pdekit → The Well):

* scalar fields ``(sample, time, *grid)`` (``vorticity``, ``pressure``, Burgers ``u``) →
  ``t0_fields/<name>`` ``(trajectory, time, *grid)``;
* vector fields ``(sample, time, component, *grid)`` (``velocity``) → ``t1_fields/<name>``
  ``(trajectory, time, *grid, component)``;
* the channel's obstacle ``mask`` (1 = fluid) → ``t0_fields/mask``, constant in time
  (``time_varying = False``): The Well's boundary records describe only axis-aligned boundaries;
* ``t`` → ``dimensions/time``; grid coordinates (``origin + i * spacing``) → ``dimensions/x``,
  ``dimensions/y``;
* per-sample numbers (``viscosity``, ``reynolds``, ``seed``, ...) → ``scalars/<name>``
  (``sample_varying = True``); those equal for every sample are also root attributes listed in
  ``simulation_parameters``;
* boundaries: periodic box and Burgers → ``PERIODIC`` on every axis; channel → ``OPEN`` along x
  (inflow, outflow) and ``WALL`` along y;
* root attributes ``dataset_name`` (``pdekit_<pde>_<level>``), ``grid_type = "cartesian"``,
  ``n_spatial_dims``, ``n_trajectories``, plus ``pdekit_config`` (the generator's JSON config).

The file ``<out>/<stem>.h5`` is written atomically; ``<out>`` is the folder to give WellDataset.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from pdekit.atomic import atomic_path
from pdekit.data import is_timeseries, level_names, open_dataset

AXES = ("x", "y", "z")
PER_SAMPLE_SKIP = ("level", "obstacles", "drag", "lift", "sample_index")  # not numbers per trajectory


def _strings(values) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=h5py.string_dtype())


def _flags(node, *, sample: bool, time: bool, dims=None):
    node.attrs["sample_varying"] = sample
    node.attrs["time_varying"] = time
    if dims is not None:
        node.attrs["dim_varying"] = np.array(dims, dtype=bool)


def _boundaries(h5, group, dim: int, shape) -> None:
    if h5.attrs.get("family") == "obstacles":
        kinds = {"x": "OPEN", "y": "WALL"}
    else:
        kinds = {axis: "PERIODIC" for axis in AXES[:dim]}
    for axis, kind in kinds.items():
        bc = group.create_group(f"{axis}_{kind.lower()}")
        bc.attrs["associated_dims"] = _strings([axis])
        bc.attrs["associated_fields"] = _strings([])
        bc.attrs["bc_type"] = kind
        _flags(bc, sample=False, time=False)
        mask = np.zeros(shape[AXES.index(axis)], dtype=bool)
        mask[[0, -1]] = True
        bc.create_dataset("mask", data=mask)
        bc.create_dataset("values", data=np.zeros(0))


def export_the_well(path, out=None) -> list[Path]:
    """Write ``<out>/<stem>.h5`` (default ``out``: folder ``<stem>-the-well`` beside the file)."""
    path = Path(path)
    with open_dataset(path) as src:
        if not is_timeseries(src):
            raise ValueError(f"{path} is a Poisson dataset; The Well holds time series (Navier-Stokes, Burgers)")
        folder = Path(out) if out else path.with_name(f"{path.stem}-the-well")
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"--out {folder} is a file; The Well format is a folder of HDF5 files")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{path.stem}.h5"
        if target.resolve() == path.resolve():
            raise ValueError(f"{target} would overwrite the input; choose another --out")
        _write(src, target)
    return [target]


def _write(src: h5py.File, target: Path) -> None:
    dim, fields = int(src.attrs["dim"]), [str(f) for f in src.attrs["fields"]]
    n, steps = src[fields[0]].shape[:2]
    shape = src[fields[0]].shape[-dim:]
    spacing = np.asarray(src.attrs["spacing"], float)
    origin = np.asarray(src.attrs["origin"], float) if "origin" in src.attrs else np.zeros(dim)
    config = json.loads(src.attrs["config"])
    levels = sorted(set(level_names(src)))
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as dst:
        dst.attrs.update({"dataset_name": f"pdekit_{src.attrs['pde']}_{'+'.join(levels)}", "grid_type": "cartesian",
                          "n_spatial_dims": dim, "n_trajectories": n, "pdekit_config": json.dumps(config)})
        dims = dst.create_group("dimensions")
        dims.attrs["spatial_dims"] = _strings(AXES[:dim])
        _flags(dims.create_dataset("time", data=np.asarray(src["t"][()], float)), sample=False, time=True)
        for k in range(dim):
            axis = dims.create_dataset(AXES[k], data=origin[k] + spacing[k] * np.arange(shape[k]))
            _flags(axis, sample=False, time=False)
        _boundaries(src, dst.create_group("boundary_conditions"), dim, shape)
        groups = {order: dst.create_group(f"t{order}_fields") for order in range(3)}
        names = {0: [], 1: [], 2: []}
        for name in fields:
            vector = src[name].ndim == 3 + dim
            order = 1 if vector else 0
            data = np.asarray(src[name][()], dtype=np.float32)
            if vector:  # components last, as The Well stores tensors
                data = np.moveaxis(data, 2, -1)
            _flags(groups[order].create_dataset(name, data=data, chunks=(1, 1) + data.shape[2:]),
                   sample=True, time=True, dims=[True] * dim)
            names[order].append(name)
        if "mask" in src:
            _flags(groups[0].create_dataset("mask", data=np.asarray(src["mask"][()], dtype=np.float32)),
                   sample=True, time=False, dims=[True] * dim)
            names[0].append("mask")
        for order, group in groups.items():
            group.attrs["field_names"] = _strings(names[order])
        scalars = dst.create_group("scalars")
        numbers = [k for k in src if src[k].ndim == 1 and src[k].shape == (n,) and k not in PER_SAMPLE_SKIP
                   and src[k].dtype.kind in "iuf"]
        constant = []
        for key in numbers:
            values = src[key][()]
            _flags(scalars.create_dataset(key, data=values), sample=True, time=False)
            if np.all(values == values[0]):
                dst.attrs[key] = values[0]
                constant.append(key)
        scalars.attrs["field_names"] = _strings(numbers)
        dst.attrs["simulation_parameters"] = _strings(constant)
