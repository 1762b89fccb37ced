"""Run a generator over many samples: workers, shards, resume, atomic output.

Finished samples go to ``<out>.parts/`` as one ``.npz`` per sample, each written atomically, so a
run killed at any moment loses at most the samples in flight; ``--resume`` skips the finished
ones.  When all are there, the HDF5 file is written atomically and the parts are removed.
Sample ``k`` always uses seed ``seed + k``, so workers and shards cannot change the data.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datagen.poisson import solve_sample
from pdekit import Grid
from pdekit.data import write_poisson

GENERATOR_VERSION = "poisson-1"
ARRAY_KEYS = ("a", "f", "u", "mask", "bc_type", "bc_value", "level", "seed", "solver_iterations",
              "solver_residual", "solve_seconds", "sample_index")


def _atomic_savez(path: Path, **arrays):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_", suffix=".npz")  # np.savez wants .npz
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _work(job):
    import torch

    torch.set_num_threads(1)  # one process per core
    k, level, resolution, dim, seed, parts = job
    out = solve_sample(level, resolution, dim, seed + k)
    grid = out.pop("grid")
    out["sample_index"] = k
    _atomic_savez(Path(parts) / f"sample_{k:08d}.npz", **{key: np.asarray(out[key]) for key in ARRAY_KEYS},
                  spacing=np.asarray(grid.spacing), origin=np.asarray(grid.origin))
    return k


def run_poisson(config: dict, out: Path, *, workers: int = 1, shard=(0, 1), resume: bool = False,
                progress: bool = True) -> Path:
    """Generate the samples of ``config`` that belong to ``shard`` into ``out``."""
    index, count = shard
    parts = out.with_name(out.name + ".parts")
    stamp = parts / "config.json"
    if parts.exists() and not resume:
        raise FileExistsError(f"{parts} holds an interrupted run: pass --resume to finish it or delete it")
    parts.mkdir(parents=True, exist_ok=True)
    if stamp.exists():
        previous = json.loads(stamp.read_text())
        if previous != config:
            raise ValueError(f"--resume: {parts} was started with a different configuration")
    else:
        stamp.write_text(json.dumps(config, sort_keys=True))
    mine = [k for k in range(config["n"]) if k % count == index]
    done = {int(p.stem.split("_")[1]) for p in parts.glob("sample_*.npz")}  # each written atomically
    todo = [k for k in mine if k not in done]
    jobs = [(k, config["level"], config["resolution"], config["dim"], config["seed"], str(parts)) for k in todo]
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), unit="sample", disable=not progress,
               desc=f"{config['level']} {config['resolution']}^{config['dim']}")
    if workers > 1 and len(jobs) > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            for _ in pool.imap_unordered(_work, jobs):
                bar.update()
    else:
        for job in jobs:
            _work(job)
            bar.update()
    bar.close()
    samples = []
    for k in mine:
        with np.load(parts / f"sample_{k:08d}.npz") as data:
            samples.append({key: data[key] for key in data.files})
    if any(not (np.array_equal(s["spacing"], samples[0]["spacing"]) and np.array_equal(s["origin"], samples[0]["origin"]))
           for s in samples):
        raise RuntimeError("samples of one file must share one grid (spacing/origin differ)")
    arrays = {key: np.stack([s[key] for s in samples]) for key in ARRAY_KEYS}
    grid = Grid(arrays["u"].shape[1:], spacing=tuple(samples[0]["spacing"]), origin=tuple(samples[0]["origin"]))
    full = dict(config, shard=f"{index}/{count}")
    write_poisson(out, arrays, grid=grid, config=full, generator_version=GENERATOR_VERSION)
    shutil.rmtree(parts)
    return out


def merge_poisson(paths, out: Path) -> Path:
    """Join shard files (same configuration) into one dataset ordered by sample index."""
    import h5py

    from pdekit.data import grid_of, open_poisson

    configs, arrays, grid = [], {k: [] for k in ARRAY_KEYS}, None
    for path in paths:
        with open_poisson(path) as h5:
            config = json.loads(h5.attrs["config"])
            config.pop("shard", None)
            configs.append(config)
            grid = grid_of(h5)
            for key in ARRAY_KEYS:
                data = h5[key][()]
                arrays[key].append(data.astype(str) if h5[key].dtype.kind == "O" else data)
    if any(c != configs[0] for c in configs):
        raise ValueError("shards were generated with different configurations; refusing to merge")
    merged = {k: np.concatenate(v) for k, v in arrays.items()}
    order = np.argsort(merged["sample_index"])
    merged = {k: v[order] for k, v in merged.items()}
    expected = np.arange(configs[0]["n"])
    if not np.array_equal(merged["sample_index"], expected):
        have = set(merged["sample_index"].tolist())
        missing = sorted(set(expected.tolist()) - have)[:5]
        raise ValueError(f"shards do not hold every sample exactly once (missing e.g. {missing}, "
                         f"{len(merged['sample_index'])} rows for {len(expected)} samples)")
    write_poisson(out, merged, grid=grid, config=dict(configs[0], shard="merged"),
                  generator_version=GENERATOR_VERSION)
    return out
