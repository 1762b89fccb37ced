"""pdekit's HDF5 files: the schemas, validating readers, exact system rebuild, lazy Dataset.

File contract (one file per dataset; leading axis = sample):

* fields: ``a`` (coefficient), ``f`` (source), ``u`` (solution), ``mask`` (bool, active nodes),
  ``bc_type`` (int8) and ``bc_value`` on the grid padded by one ghost layer (see
  :mod:`pdekit.boundary`);
* per-sample 1-D: ``level``, ``seed``, ``solver_iterations``, ``solver_residual``, ``solve_seconds``
  (generators may add more, e.g. ``solver_backward_error``, ``sample_index``);
* root attributes: ``pde = "poisson"``, ``dim``, ``resolution``, ``spacing``, ``origin``,
  ``schema_version``, ``generator_version``, ``config`` (JSON).

Time-series contract (Navier–Stokes, Burgers, …; ``pde`` names the equation):

* fields with axes ``(sample, time, *grid)`` (scalars, e.g. ``vorticity``) or
  ``(sample, time, component, *grid)`` (vectors, e.g. ``velocity``; dataset attribute
  ``components``); optional static ``mask`` ``(sample, *grid)``;
* ``t`` ``(time,)``; per-sample 1-D ``level``, ``seed`` (generators add e.g. ``viscosity``,
  ``wall_seconds``);
* root attributes: ``pde``, ``dim``, ``resolution``, ``spacing``, ``dt``, ``fields`` (names of the
  time-series fields), ``schema_version``, ``generator_version``, ``config`` (JSON).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import torch

from pdekit.errors import DatasetFormatError  # noqa: F401 (raised here; imported from here by callers)
from pdekit.files.atomic import atomic_path
from pdekit.grid import Grid
from pdekit.operators import DiffusionOperator

SCHEMA_VERSION = 1
POISSON_FIELDS = ("a", "f", "u", "mask", "bc_type", "bc_value")
POISSON_PER_SAMPLE = ("level", "seed", "solver_iterations", "solver_residual", "solve_seconds")
POISSON_ATTRS = ("pde", "dim", "resolution", "spacing", "origin", "schema_version", "generator_version", "config")


def validate_poisson(h5: h5py.File, name: str = "file") -> int:
    """Check the schema; return the number of samples.  Raises :class:`DatasetFormatError`."""
    missing = [k for k in POISSON_ATTRS if k not in h5.attrs]
    if missing:
        raise DatasetFormatError(f"{name} is not a pdekit dataset: root attributes {missing} are missing")
    if h5.attrs["pde"] != "poisson":
        raise DatasetFormatError(f"{name} holds pde={h5.attrs['pde']!r}, expected 'poisson'")
    if int(h5.attrs["schema_version"]) != SCHEMA_VERSION:
        raise DatasetFormatError(f"{name} has schema version {int(h5.attrs['schema_version'])}; this pdekit "
                                 f"reads version {SCHEMA_VERSION}")
    absent = [k for k in POISSON_FIELDS + POISSON_PER_SAMPLE if k not in h5]
    if absent:
        raise DatasetFormatError(f"{name} is missing datasets {absent}")
    dim = int(h5.attrs["dim"])
    shape = tuple(h5["u"].shape[1:])
    n = h5["u"].shape[0]
    padded = tuple(s + 2 for s in shape)
    expect = {"a": shape, "f": shape, "u": shape, "mask": shape, "bc_type": padded, "bc_value": padded}
    if len(shape) != dim:
        raise DatasetFormatError(f"{name}: u has {len(shape)} spatial axes but dim = {dim}")
    for key, spatial in expect.items():
        if tuple(h5[key].shape) != (n,) + spatial:
            raise DatasetFormatError(f"{name}: {key} has shape {h5[key].shape}, expected {(n,) + spatial} "
                                     "(truncated or inconsistent file)")
    for key in POISSON_PER_SAMPLE:
        if h5[key].shape != (n,):
            raise DatasetFormatError(f"{name}: {key} has shape {h5[key].shape}, expected ({n},)")
    return n


TIMESERIES_ATTRS = ("pde", "dim", "resolution", "spacing", "dt", "fields", "schema_version", "generator_version",
                    "config")


def validate_timeseries(h5: h5py.File, name: str = "file") -> int:
    """Check the time-series schema; return the number of samples."""
    missing = [k for k in TIMESERIES_ATTRS if k not in h5.attrs]
    if missing:
        raise DatasetFormatError(f"{name} is not a pdekit time-series dataset: root attributes {missing} are missing")
    if int(h5.attrs["schema_version"]) != SCHEMA_VERSION:
        raise DatasetFormatError(f"{name} has schema version {int(h5.attrs['schema_version'])}; this pdekit "
                                 f"reads version {SCHEMA_VERSION}")
    fields = [str(f) for f in h5.attrs["fields"]]
    absent = [k for k in fields + ["t", "level", "seed"] if k not in h5]
    if absent:
        raise DatasetFormatError(f"{name} is missing datasets {absent}")
    dim, n, steps = int(h5.attrs["dim"]), h5["level"].shape[0], h5["t"].shape[0]
    for key in fields:
        shape = h5[key].shape
        if shape[:2] != (n, steps) or len(shape) - 2 - dim not in (0, 1):
            raise DatasetFormatError(f"{name}: {key} has shape {shape}, expected ({n}, {steps}, [components,] "
                                     f"*{dim}-D grid) (truncated or inconsistent file)")
    if "mask" in h5 and h5["mask"].shape != (n,) + h5[fields[0]].shape[-dim:]:
        raise DatasetFormatError(f"{name}: mask has shape {h5['mask'].shape}, expected (samples, *grid)")
    return n


def open_dataset(path) -> h5py.File:
    """Open and validate any pdekit dataset (Poisson or time series) for reading."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such dataset: {path}")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise DatasetFormatError(f"{path} is not a readable HDF5 file ({err})") from None
    try:
        if "pde" not in h5.attrs:
            raise DatasetFormatError(f"{path} is not a pdekit dataset: it has no 'pde' attribute")
        if h5.attrs["pde"] == "poisson":
            validate_poisson(h5, str(path))
        elif h5.attrs["pde"] == LABELS_PDE:
            validate_labels(h5, str(path))
        else:
            validate_timeseries(h5, str(path))
    except Exception:
        h5.close()
        raise
    return h5


def level_names(h5: h5py.File) -> list[str]:
    """Each sample's level name (h5py returns variable-length strings as bytes)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in h5["level"][()]]


def levels_in(paths) -> list[str]:
    """The distinct level names of one or more dataset files, in order of first appearance."""
    names = {}
    for path in paths:
        with open_dataset(path) as h5:
            names.update(dict.fromkeys(level_names(h5)))
    return list(names)


def is_timeseries(h5: h5py.File) -> bool:
    return h5.attrs["pde"] not in ("poisson", LABELS_PDE)


# ------------------------------------------------------------------ pointwise labels
LABELS_PDE = "feynman_kac"
LABEL_KEYS = ("points", "value", "stderr", "steps", "seconds", "exact", "level", "seed", "sample_index")


def validate_labels(h5: h5py.File, name: str = "file") -> int:
    """Pointwise labels (``datagen feynman-kac``): points (n, d) with value, stderr, ... per point."""
    missing = [k for k in LABEL_KEYS if k not in h5]
    if missing:
        raise DatasetFormatError(f"{name}: missing fields {missing}")
    n = h5["points"].shape[0]
    if h5["points"].ndim != 2:
        raise DatasetFormatError(f"{name}: points has shape {h5['points'].shape}, expected (n, dim)")
    bad = [k for k in LABEL_KEYS if h5[k].shape[:1] != (n,)]
    if bad:
        raise DatasetFormatError(f"{name}: {bad[0]} has {h5[bad[0]].shape[0]} rows, points has {n}")
    return n


def write_labels(path, arrays: dict, *, config: dict, generator_version: str) -> Path:
    """Write pointwise Monte Carlo labels atomically: ``points`` (n, d), ``value``, ``stderr``
    (its standard error), ``steps`` (mean walk length), ``seconds`` (per label), ``exact`` (NaN
    where unknown), plus the runner's ``level`` (the problem), ``seed``, ``sample_index``."""
    path = Path(path)
    with _atomic_h5(path) as h5:
        for key, value in arrays.items():
            _write_1d(h5, key, value)
        h5.attrs.update({"pde": LABELS_PDE, "dim": int(np.asarray(arrays["points"]).shape[1]),
                         "problem": config["problem"], "sampler": config["sampler"], "paths": int(config["paths"]),
                         "equation": config.get("equation", ""), "schema_version": SCHEMA_VERSION,
                         "generator_version": generator_version, "config": json.dumps(config, sort_keys=True)})
    return path


@contextmanager
def _atomic_h5(path: Path):
    """An HDF5 file open for writing, renamed to ``path`` only when complete."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        yield h5


def _write_1d(h5, key, value):
    data = np.asarray(value)
    if data.dtype.kind in "UO":  # strings (e.g. level names)
        h5.create_dataset(key, data=data.astype(object), dtype=h5py.string_dtype())
    else:
        h5.create_dataset(key, data=data)


def write_timeseries(path, arrays: dict, *, pde: str, fields, spacing, dt: float, config: dict,
                     generator_version: str, attrs: dict | None = None) -> Path:
    """Write a time-series dataset atomically (temporary file, then rename).  ``dt`` is the time
    between snapshots; ``attrs`` adds root attributes (e.g. ``domain_size``, ``boundary``)."""
    path = Path(path)
    fields = list(fields)
    missing = [k for k in fields + ["t", "level", "seed"] if k not in arrays]
    if missing:
        raise ValueError(f"missing arrays {missing}")
    with _atomic_h5(path) as h5:
        for key, value in arrays.items():
            if key in fields:  # one snapshot per chunk: lazy reads of time windows
                data = np.asarray(value)
                h5.create_dataset(key, data=data, chunks=(1, 1) + data.shape[2:])
            else:
                _write_1d(h5, key, value)
        h5.attrs.update({"pde": pde, "dim": len(spacing), "resolution": np.asarray(arrays[fields[0]]).shape[-1],
                         "spacing": np.asarray(spacing, float), "dt": float(dt), "fields": fields,
                         "schema_version": SCHEMA_VERSION, "generator_version": generator_version,
                         "config": json.dumps(config, sort_keys=True), **(attrs or {})})
    return path


def open_poisson(path) -> h5py.File:
    """Open and validate a Poisson dataset for reading."""
    h5 = open_dataset(path)
    if h5.attrs["pde"] != "poisson":
        pde = h5.attrs["pde"]
        h5.close()
        raise DatasetFormatError(f"{path} holds pde={pde!r}, expected 'poisson'")
    return h5


def grid_of(h5: h5py.File) -> Grid:
    return Grid(tuple(h5["u"].shape[1:]), spacing=tuple(h5.attrs["spacing"]), origin=tuple(h5.attrs["origin"]))


def batch_grids(batch: dict, grid: Grid | None = None):
    """The grid of a batch's samples: one :class:`Grid` when they share it, else a list with one
    per sample (what :meth:`DiffusionOperator.from_arrays` takes).  A batch read with
    ``system=True`` carries each sample's ``spacing`` and ``origin``; ``grid`` (the shape, and the
    spacing of a batch that carries none) comes from the data."""
    shape = tuple(batch["f"].shape[1:])
    if "spacing" not in batch:
        if grid is None:
            raise ValueError("the batch carries no grid (spacing/origin) and none was given")
        return grid
    spacing = torch.as_tensor(batch["spacing"], dtype=torch.float64).cpu().reshape(len(batch["f"]), -1)
    origin = torch.as_tensor(batch["origin"], dtype=torch.float64).cpu().reshape(len(batch["f"]), -1)
    pairs = [(tuple(h.tolist()), tuple(o.tolist())) for h, o in zip(spacing, origin)]
    if len(set(pairs)) == 1:
        return Grid(shape, pairs[0][0], pairs[0][1])
    return [Grid(shape, h, o) for h, o in pairs]


def load_system(path, index: int, *, dtype=torch.float64):
    """Rebuild sample ``index``'s exact linear system: ``(operator, b, u)`` with ``A u = b``."""
    with open_poisson(path) as h5:
        n = h5["u"].shape[0]
        if not 0 <= index < n:
            raise IndexError(f"sample {index} out of range: the file holds {n}")
        grid = grid_of(h5)
        op = DiffusionOperator.from_arrays(grid, h5["a"][index], h5["bc_type"][index], h5["bc_value"][index])
        b = op.rhs(torch.as_tensor(h5["f"][index], dtype=dtype))
        u = torch.as_tensor(h5["u"][index], dtype=dtype)
    return op, b, u


def config_of(path) -> dict:
    with open_poisson(path) as h5:
        return json.loads(h5.attrs["config"])


class LazyH5:
    """Mixin for datasets that read one file lazily: ``self.h5`` is opened on first use, so each
    DataLoader worker (and each pickled copy) gets its own handle.  Needs ``self.path``."""

    _h5 = None

    @property
    def h5(self) -> h5py.File:
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")
        return self._h5

    def __getstate__(self):
        return {**self.__dict__, "_h5": None}


class PoissonDataset(LazyH5, torch.utils.data.Dataset):
    """Lazy per-sample reader (opens the file in each worker; never loads the whole file)."""

    def __init__(self, path, fields=("a", "f", "mask", "u")):
        self.path = str(path)
        self.fields = tuple(fields)
        with open_poisson(self.path) as h5:
            self._len = h5["u"].shape[0]
            unknown = [k for k in self.fields if k not in h5]
            if unknown:
                raise KeyError(f"{self.path} has no field(s) {unknown}")

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> dict:
        item = {k: torch.as_tensor(np.asarray(self.h5[k][index])) for k in self.fields}
        item["index"] = index
        return item


def write_poisson(path, arrays: dict, *, grid: Grid, config: dict, generator_version: str) -> Path:
    """Write a complete Poisson dataset atomically (temporary file in the same folder, then
    rename): a reader never sees a half-written file."""
    path = Path(path)
    missing = [k for k in POISSON_FIELDS + POISSON_PER_SAMPLE if k not in arrays]
    if missing:
        raise ValueError(f"missing arrays {missing}")
    with _atomic_h5(path) as h5:
        for key in POISSON_FIELDS:
            data = np.asarray(arrays[key])
            chunks = (1,) + data.shape[1:]  # one sample per chunk: lazy per-sample reads
            h5.create_dataset(key, data=data, chunks=chunks, compression="gzip" if key in ("mask", "bc_type") else None)
        extra = [k for k in arrays if k not in POISSON_FIELDS + POISSON_PER_SAMPLE]
        for key in POISSON_PER_SAMPLE + tuple(extra):
            _write_1d(h5, key, arrays[key])
        h5.attrs.update({"pde": "poisson", "dim": grid.ndim, "resolution": grid.shape[0],
                         "spacing": np.asarray(grid.spacing), "origin": np.asarray(grid.origin),
                         "schema_version": SCHEMA_VERSION, "generator_version": generator_version,
                         "config": json.dumps(config, sort_keys=True)})
    return path
