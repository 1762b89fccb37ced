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
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datagen.poisson import level_from_dict, solve_sample
from pdekit import Grid
from pdekit.atomic import atomic_path
from pdekit.data import write_poisson

GENERATOR_VERSION = "poisson-2"
ARRAY_KEYS = ("a", "f", "u", "mask", "bc_type", "bc_value", "level", "seed", "solver_iterations",
              "solver_residual", "solver_backward_error", "solve_seconds", "sample_index")


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _work(job):
    import torch

    torch.set_num_threads(1)  # one process per core
    k, level, resolution, dim, seed, parts = job
    out = solve_sample(level_from_dict(level), resolution, dim, seed + k)
    grid = out.pop("grid")
    out["sample_index"] = k
    t0 = time.perf_counter()
    with atomic_path(Path(parts) / f"sample_{k:08d}.npz") as tmp:  # np.savez keeps the .npz suffix
        np.savez(tmp, **{key: np.asarray(out[key]) for key in ARRAY_KEYS},
                 spacing=np.asarray(grid.spacing), origin=np.asarray(grid.origin))
    return {"sample": out["sample_seconds"], "solve": out["solve_seconds"], "io": time.perf_counter() - t0}


def run_poisson(config: dict, out: Path, *, workers: int = 1, shard=(0, 1), resume: bool = False,
                progress: bool = True) -> dict:
    """Generate the samples of ``config`` that belong to ``shard`` into ``out``.  ``config`` holds
    ``level_spec`` (every axis value of the level), ``n``, ``resolution``, ``dim``, ``seed``.
    Returns seconds spent (summed over workers) sampling, solving and writing, and the wall time."""
    start = time.perf_counter()
    index, count = shard
    config = json.loads(json.dumps(config))  # the form it has after a round trip (tuples -> lists)
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
    jobs = [(k, config["level_spec"], config["resolution"], config["dim"], config["seed"], str(parts)) for k in todo]
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), unit="sample", disable=not progress,
               desc=f"{config['level']} {config['resolution']}^{config['dim']}")
    spent = {"sample": 0.0, "solve": 0.0, "io": 0.0}

    def account(seconds):
        for key in spent:
            spent[key] += seconds[key]
        bar.update()

    if workers > 1 and len(jobs) > 1:
        # One thread per worker for every BLAS/OpenMP pool: two workers whose OpenBLAS pools each
        # spin on both cores solved 3D samples ~20x slower (measured, 2 cores).  The limits are
        # read when the libraries load, so workers come from a fresh forkserver, not a fork of this
        # process whose libraries are loaded already.
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(["datagen.runner"])
        saved = {k: os.environ.get(k) for k in _THREAD_VARIABLES}
        os.environ.update({k: "1" for k in _THREAD_VARIABLES})
        try:
            pool = context.Pool(workers)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        with pool:
            chunk = max(1, min(8, len(jobs) // (4 * workers)))  # fewer round trips for small samples
            for seconds in pool.imap_unordered(_work, jobs, chunksize=chunk):
                account(seconds)
    else:
        for job in jobs:
            account(_work(job))
    bar.close()
    t0 = time.perf_counter()
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
    spent["io"] += time.perf_counter() - t0
    return {"samples": len(todo), "wall": time.perf_counter() - start, **spent}


def merge_poisson(paths, out: Path) -> Path:
    """Join shard files (same configuration) into one dataset ordered by sample index."""

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
