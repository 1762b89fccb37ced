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
* per-sample physical parameters (``viscosity``, ``reynolds``) → ``scalars/<name>``
  (``sample_varying = True``; what a model may be conditioned on); those equal for every sample
  are also root attributes listed in ``simulation_parameters``.  Run diagnostics (seeds, solver
  iterations, wall seconds, step counts) stay root attributes ``pdekit_<name>`` (one value per
  trajectory), out of the model's inputs;
* boundaries: periodic box and Burgers → ``PERIODIC`` on every axis; channel → ``OPEN`` along x
  (inflow, outflow) and ``WALL`` along y;
* root attributes ``dataset_name`` (``pdekit_<pde>_<level>``), ``grid_type = "cartesian"``,
  ``n_spatial_dims``, ``n_trajectories``, plus ``pdekit_config`` (the generator's JSON config).

Layout, as The Well ships its datasets: ``<out>/data/{train,valid,test}/<stem>.h5`` (trajectories
split by a seeded permutation; an empty part gets no file) and ``<out>/stats.yaml`` (mean, std,
rms of every field over the training trajectories, and of its time differences: ``mean_delta``,
``std_delta``, ``rms_delta``; per component for vector fields), so ``WellDataset(path=out,
well_split_name="train", use_normalization=True)`` works.  Every file is written atomically; an
existing one is replaced only with ``overwrite``.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from pdekit.files.atomic import atomic_path
from pdekit.files.dataset import is_timeseries, level_names, open_dataset

AXES = ("x", "y", "z")
PHYSICAL_PARAMETERS = ("viscosity", "reynolds")  # exported as scalars; other per-sample numbers are diagnostics
SPLITS = ("train", "valid", "test")


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


def split_trajectories(n: int, fractions, seed: int) -> dict[str, np.ndarray]:
    """Trajectory indices of each split: a seeded permutation cut by ``fractions`` (train gets the
    rounding remainder and at least one)."""
    fractions = [float(f) for f in fractions]
    if len(fractions) != 3 or not all(np.isfinite(f) and f >= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"--split must be three non-negative fractions summing to 1 (train,valid,test), got {fractions}")
    order = np.random.default_rng(seed).permutation(n)
    n_valid, n_test = (int(round(f * n)) for f in fractions[1:])
    n_train = n - n_valid - n_test
    if n_train < 1:
        raise ValueError(f"--split {fractions} leaves no training trajectory of {n}")
    parts = np.split(order, [n_train, n_train + n_valid])
    return {name: np.sort(part) for name, part in zip(SPLITS, parts)}


def export_the_well(path, out=None, *, split=(0.8, 0.1, 0.1), seed: int = 0, overwrite: bool = False) -> list[Path]:
    """Write ``<out>/data/<split>/<stem>.h5`` and ``<out>/stats.yaml`` (default ``out``: folder
    ``<stem>-the-well`` beside the file)."""
    from datagen.export import check_output

    path = Path(path)
    with open_dataset(path) as src:
        if not is_timeseries(src):
            raise ValueError(f"{path} is a Poisson dataset; The Well holds time series (Navier-Stokes, Burgers)")
        folder = Path(out) if out else path.with_name(f"{path.stem}-the-well")
        check_output(folder, path, folder=True, overwrite=overwrite, replaces=False)
        n = src[str(src.attrs["fields"][0])].shape[0]
        parts = {name: idx for name, idx in split_trajectories(n, split, seed).items() if len(idx)}
        targets = {name: folder / "data" / name / f"{path.stem}.h5" for name in parts}
        stats_path = folder / "stats.yaml"
        for target in [*targets.values(), stats_path]:
            check_output(target, path, folder=False, overwrite=overwrite)
            if target.exists() and target.resolve() == path.resolve():
                raise ValueError(f"{target} would overwrite the input; choose another --out")
        made = []  # folders this export creates: removed again if it fails (a full disk)
        try:
            for name, target in targets.items():
                for folder_ in reversed([target.parent, *target.parent.parents]):
                    if not folder_.exists():
                        folder_.mkdir()
                        made.append(folder_)
                _write(src, target, parts[name])
            _write_stats(src, stats_path, parts["train"])
        except BaseException:
            for folder_ in reversed(made):
                if folder_.is_dir() and not any(folder_.iterdir()):
                    folder_.rmdir()
            raise
    return [*targets.values(), stats_path]


def _field_arrays(src: h5py.File, indices, dim: int):
    """``(name, array (trajectories, time, *grid[, component]), is_constant)`` for every field the
    export writes, read one trajectory at a time (never the whole file)."""
    for name in [str(f) for f in src.attrs["fields"]]:
        vector = src[name].ndim == 3 + dim
        data = np.stack([np.asarray(src[name][i], dtype=np.float32) for i in indices])
        yield name, (np.moveaxis(data, 2, -1) if vector else data), False
    if "mask" in src:
        yield "mask", np.stack([np.asarray(src["mask"][i], dtype=np.float32) for i in indices]), True


def _write_stats(src: h5py.File, target: Path, train) -> None:
    """The Well's normalisation statistics over the training trajectories (float64 sums)."""
    import yaml

    dim = int(src.attrs["dim"])
    stats = {key: {} for key in ("mean", "std", "rms", "mean_delta", "std_delta", "rms_delta")}

    def moments(values, vector):
        axes = tuple(range(values.ndim - 1)) if vector else None
        values = values.astype(np.float64)
        mean, std, rms = values.mean(axis=axes), values.std(axis=axes), np.sqrt((values**2).mean(axis=axes))
        as_list = lambda v: [float(c) for c in np.atleast_1d(v)] if vector else float(v)  # noqa: E731
        return as_list(mean), as_list(std), as_list(rms)

    for name, data, constant in _field_arrays(src, train, dim):
        vector = not constant and data.ndim == 3 + dim
        stats["mean"][name], stats["std"][name], stats["rms"][name] = moments(data, vector)
        if not constant:
            delta = data[:, 1:] - data[:, :-1]
            stats["mean_delta"][name], stats["std_delta"][name], stats["rms_delta"][name] = moments(delta, vector)
    with atomic_path(target) as tmp:
        Path(tmp).write_text(yaml.safe_dump(stats, sort_keys=False))


def _write(src: h5py.File, target: Path, indices) -> None:
    dim, fields = int(src.attrs["dim"]), [str(f) for f in src.attrs["fields"]]
    n = len(indices)
    shape = src[fields[0]].shape[-dim:]
    spacing = np.asarray(src.attrs["spacing"], float)
    origin = np.asarray(src.attrs["origin"], float) if "origin" in src.attrs else np.zeros(dim)
    config = json.loads(src.attrs["config"])
    levels = sorted(set(level_names(src)))
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as dst:
        dst.attrs.update({"dataset_name": f"pdekit_{src.attrs['pde']}_{'+'.join(levels)}", "grid_type": "cartesian",
                          "n_spatial_dims": dim, "n_trajectories": n, "pdekit_config": json.dumps(config),
                          "pdekit_trajectories": np.asarray(indices, dtype=np.int64)})
        dims = dst.create_group("dimensions")
        dims.attrs["spatial_dims"] = _strings(AXES[:dim])
        _flags(dims.create_dataset("time", data=np.asarray(src["t"][()], float)), sample=False, time=True)
        for k in range(dim):
            axis = dims.create_dataset(AXES[k], data=origin[k] + spacing[k] * np.arange(shape[k]))
            _flags(axis, sample=False, time=False)
        _boundaries(src, dst.create_group("boundary_conditions"), dim, shape)
        groups = {order: dst.create_group(f"t{order}_fields") for order in range(3)}
        names = {0: [], 1: [], 2: []}
        for name, data, constant in _field_arrays(src, indices, dim):
            order = 1 if not constant and data.ndim == 3 + dim else 0  # vectors: components last
            chunks = (1,) + data.shape[1:] if constant else (1, 1) + data.shape[2:]
            _flags(groups[order].create_dataset(name, data=data, chunks=chunks),
                   sample=True, time=not constant, dims=[True] * dim)
            names[order].append(name)
        for order, group in groups.items():
            group.attrs["field_names"] = _strings(names[order])
        scalars = dst.create_group("scalars")
        per_sample = [k for k in src if isinstance(src[k], h5py.Dataset) and src[k].ndim == 1
                      and src[k].shape[0] == src[fields[0]].shape[0] and src[k].dtype.kind in "iuf"]
        physical = [k for k in per_sample if k in PHYSICAL_PARAMETERS]
        constant = []
        for key in per_sample:
            values = np.asarray(src[key][()])[indices]
            if key not in physical:
                dst.attrs[f"pdekit_{key}"] = values  # a diagnostic: kept, but not a model input
                continue
            _flags(scalars.create_dataset(key, data=values), sample=True, time=False)
            if len(values) and np.all(values == values[0]):
                dst.attrs[key] = values[0]
                constant.append(key)
        scalars.attrs["field_names"] = _strings(physical)
        dst.attrs["simulation_parameters"] = _strings(constant)
