"""Run any generator (:mod:`datagen.generators`) over many samples: workers, shards, resume,
atomic output; and merge shard files.

Finished samples go to ``<out>.parts/`` as one ``.npz`` per sample, each written atomically and
flushed to disk, so a run killed at any moment loses at most the samples in flight; ``--resume``
skips the finished ones (an empty or unreadable part counts as missing and is recomputed).  When
all are there, the HDF5 file is written atomically and the parts are removed.  A run that fails
with an error removes its parts (the same error would come back); one stopped by a signal
(Ctrl-C, SIGTERM) keeps them for ``--resume``.  ``<out>.lock`` keeps a second run off the same
output while one is going.
Sample ``k`` always uses seed ``seed + k`` and is computed independently of the others (batched
solvers included), so workers, batches and shards cannot change the data.
"""
from __future__ import annotations

import fcntl
import json
import multiprocessing as mp
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datagen import generators
from pdekit.files.atomic import atomic_path

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGTERM; Ctrl-C is a KeyboardInterrupt): its finished
    samples stay for ``--resume``."""


class StaleRunError(FileExistsError):
    """``<out>.parts/`` holds an interrupted run and neither ``--resume`` nor ``--overwrite`` was given."""

    def __init__(self, parts: Path):
        super().__init__(f"{parts} holds an interrupted run")
        self.parts = parts


class RunInUseError(RuntimeError):
    """Another run is writing the same output."""


@contextmanager
def run_lock(out: Path):
    """Hold ``<out>.lock`` (an advisory lock) for the duration of a run."""
    lock = out.with_name(out.name + ".lock")
    if lock.is_symlink() or (lock.exists() and not lock.is_file()):
        raise ValueError(f"{lock} is a link or not a regular file; remove it (a run's lock file is a plain file)")
    # never follow a link into someone else's file (the check above can race; O_NOFOLLOW cannot)
    handle = os.fdopen(os.open(lock, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o666), "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise RunInUseError(f"{out} is in use by another run (pid {owner}); wait for it to finish") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)  # while still locked: a waiting run cannot take a stale file
    finally:
        handle.close()


def finished_samples(parts: Path) -> set[int]:
    """Indices of the complete parts; empty or unreadable ones (a crash mid-write on a file system
    without atomic rename, a full disk) are deleted so they are computed again."""
    done = set()
    for path in parts.glob("sample_*.npz"):
        try:
            with np.load(path) as data:  # reads the zip directory, which is written last
                complete = "sample_index" in data.files
        except Exception:
            complete = False
        if complete:
            done.add(int(path.stem.split("_")[1]))
        else:
            path.unlink(missing_ok=True)
    return done


def _save(sample: dict, parts: Path) -> None:
    k = int(sample["sample_index"])
    with atomic_path(parts / f"sample_{k:08d}.npz") as tmp:  # np.savez keeps the .npz suffix
        np.savez(tmp, **{key: np.asarray(value) for key, value in sample.items()})


def _work(job, progress=None):
    import torch

    # One torch thread per process, in workers and in the main process alike: CPU reductions
    # split across threads round differently, so the thread count would change the data
    # (measured: pressure iterations and 1e-7 differences in the channel flow).  Parallelism
    # comes from --workers.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config, indices, parts = job
        new = sum(not (Path(parts) / f"sample_{k:08d}.npz").exists() for k in indices)
        t0 = time.perf_counter()
        samples = generators.generate(config, indices, progress=progress, parts=Path(parts))
        compute = time.perf_counter() - t0
        t0 = time.perf_counter()
        for sample in samples:
            _save(sample, Path(parts))
    finally:
        torch.set_num_threads(threads)
    seconds = {"compute": compute, "io": time.perf_counter() - t0, "new": new}
    if "solve_seconds" in samples[0]:  # Poisson's split of the compute time
        seconds["solve_seconds"] = float(sum(s["solve_seconds"] for s in samples))
    return seconds


def _pool(workers: int):
    # One thread per worker for every BLAS/OpenMP pool: two workers whose OpenBLAS pools each spin
    # on both cores solved 3D samples ~20x slower (measured, 2 cores).  The limits are read when the
    # libraries load, so workers come from a fresh forkserver, not a fork of this process.
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["datagen.runner"])
    saved = {k: os.environ.get(k) for k in _THREAD_VARIABLES}
    os.environ.update({k: "1" for k in _THREAD_VARIABLES})
    try:
        return context.Pool(workers)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(config: dict, out: Path, *, workers: int = 1, shard=(0, 1), resume: bool = False,
        overwrite: bool = False, progress: bool = True) -> dict:
    """Generate the samples of ``config`` that belong to ``shard`` into ``out`` (and any side files
    the generator writes).  Returns seconds spent (summed over workers) computing and writing,
    the wall time and the number of samples computed now.  ``overwrite`` also clears the parts of
    an interrupted run; ``resume`` continues it."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise ValueError(f"--out {out} is a link or not a regular file; it is never replaced")
    parts = out.with_name(out.name + ".parts")
    if parts.is_symlink() or (parts.exists() and not parts.is_dir()):
        raise ValueError(f"{parts} is a link or not a folder; remove it (a run keeps its parts in a plain folder)")
    index, count = shard
    size = generators.batch_size(config)
    blocks = -(-int(config["n"]) // size)
    if index >= blocks:  # before the lock or any file: an empty shard would write an empty dataset
        raise ValueError(f"--shard {index}/{count} holds no samples: {config['n']} samples in blocks of {size} "
                         f"fill {blocks} shard(s); use at most {blocks} shards")
    with run_lock(out):
        if parts.exists() and not resume:
            if not overwrite:
                raise StaleRunError(parts)
            shutil.rmtree(parts)
        index, count = shard
        config = json.loads(json.dumps(dict(config, shard=f"{index}/{count}")))  # its form after a round trip
        stamp = parts / "config.json"
        if stamp.exists() and json.loads(stamp.read_text()) != config:  # checked before anything can be removed
            raise ValueError(f"--resume: {parts} was started with a different configuration "
                             "(run the original command with --resume, or pass --overwrite to start over)")
        try:
            return _run(config, out, parts, workers, shard, progress)
        except KeyboardInterrupt:  # Interrupted too
            raise  # finished samples stay for --resume
        except BaseException:
            shutil.rmtree(parts, ignore_errors=True)
            raise


def _run(config, out, parts, workers, shard, progress) -> dict:
    start = time.perf_counter()
    index, count = shard
    stamp = parts / "config.json"
    parts.mkdir(parents=True, exist_ok=True)
    if not stamp.exists():
        with atomic_path(stamp) as tmp:
            tmp.write_text(json.dumps(config, sort_keys=True))
    # Samples are computed in fixed blocks of ``batch`` consecutive indices (batched FFTs round
    # differently for different batch compositions, and chaotic flows amplify round-off), and a
    # shard takes whole blocks: sample k belongs to shard (k // batch) % count.
    size = generators.batch_size(config)
    mine = [k for k in range(config["n"]) if (k // size) % count == index]
    done = finished_samples(parts)
    blocks = {}
    for k in mine:
        blocks.setdefault(k // size, []).append(k)
    jobs = [(config, block, str(parts)) for block in blocks.values() if not set(block) <= done]
    todo = [k for _, block, _ in jobs for k in block if k not in done]
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), unit="sample", disable=not progress,
               desc=generators.describe(config), bar_format="{l_bar}{bar}| {n:.4g}/{total} [{elapsed}<{remaining}, {rate_fmt}]")
    spent = {"compute": 0.0, "io": 0.0}
    shown = [0.0]

    def account(seconds):
        for key, value in seconds.items():
            if key != "new":
                spent[key] = spent.get(key, 0.0) + value
        bar.update(seconds["new"] - shown[0])
        shown[0] = 0.0

    def within_job(fraction: float):  # single process: move the bar during long trajectories
        if fraction - shown[0] >= 0.01:
            bar.update(fraction - shown[0])
            shown[0] = fraction

    if workers > 1 and len(jobs) > 1:
        with _pool(workers) as pool:
            chunk = max(1, min(8, len(jobs) // (4 * workers)))  # fewer round trips for small samples
            for seconds in pool.imap_unordered(_work, jobs, chunksize=chunk):
                account(seconds)
    else:
        for job in jobs:
            account(_work(job, progress=lambda step, total: within_job(step / total)))
    bar.close()
    t0 = time.perf_counter()
    samples = []
    for k in mine:
        with np.load(parts / f"sample_{k:08d}.npz") as data:
            samples.append({key: (data[key].item() if data[key].ndim == 0 else data[key]) for key in data.files})
    generators.write(out, samples, config)
    shutil.rmtree(parts)
    spent["io"] += time.perf_counter() - t0
    return {"samples": len(todo), "wall": time.perf_counter() - start, **spent}


def merge(paths, out: Path) -> Path:
    """Join the shard files of one run (``--shard i/n`` for every ``i``) into one dataset ordered
    by sample index.  Works for every pdekit dataset: arrays with one row per sample are joined,
    the others (``t``, ``t_force``) must agree."""
    import h5py

    from pdekit.files.atomic import atomic_path
    from pdekit.files.dataset import open_dataset

    configs, files = [], []
    for path in paths:
        with open_dataset(path) as h5:
            config = json.loads(h5.attrs["config"])
        configs.append(config)
        files.append(path)
    shards = [c.pop("shard", "0/1") for c in configs]
    merged = [str(p) for p, s in zip(files, shards) if s == "merged"]
    if merged:
        raise ValueError(f"{merged[0]} is already a merged dataset; merge takes the shard files of one run "
                         "(written with --shard i/n)")
    if any(c != configs[0] for c in configs):
        raise ValueError("shards were generated with different configurations; refusing to merge")
    count = int(shards[0].split("/")[1])
    got = sorted(int(s.split("/")[0]) for s in shards)
    if got != list(range(count)) or any(int(s.split("/")[1]) != count for s in shards):
        raise ValueError(f"need every shard 0..{count - 1} of {count} exactly once, got {', '.join(sorted(shards))}")
    handles = [open_dataset(p) for p in files]
    try:
        first = handles[0]
        rows = [h["sample_index"].shape[0] for h in handles]
        order = np.argsort(np.concatenate([h["sample_index"][()] for h in handles]), kind="stable")
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as dst:
            for key, src in first.items():
                per_sample = all(h[key].shape[:1] == (r,) for h, r in zip(handles, rows)) and key not in ("t", "t_force")
                if not per_sample:
                    if any(not np.array_equal(h[key][()], src[()]) for h in handles):
                        raise ValueError(f"shards disagree on {key}")
                    dst.create_dataset(key, data=src[()])
                    continue
                data = np.concatenate([h[key][()] for h in handles])[order]
                dst.create_dataset(key, data=data, dtype=src.dtype, chunks=src.chunks,
                                   compression=src.compression)
            dst.attrs.update(dict(first.attrs))
            dst.attrs["config"] = json.dumps(dict(configs[0], shard="merged"), sort_keys=True)
    finally:
        for h in handles:
            h.close()
    with open_dataset(out):  # the result validates like any dataset
        pass
    return out
