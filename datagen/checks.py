"""The checks every generating ``datagen`` command makes before any work: seeds, workers, shards, the
output path (never a link, a folder or someone else's file) and whether the run fits in memory and
on disk.  Each failure is a :class:`~datagen.kinds.UsageError` naming the problem."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from datagen.kinds import UsageError

LARGEST_SEED = 2**63 - 1  # seeds are stored as int64; sample k uses seed + k


def check_seed(seed: int, n: int) -> None:
    """One seed rule for every generator: sample k uses ``seed + k``, a non-negative int64."""
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    if seed + n - 1 > LARGEST_SEED:
        raise UsageError(f"--seed {seed} with --n {n}: the last sample's seed {seed + n - 1} exceeds {LARGEST_SEED}")


def cap_workers(workers: int) -> int:
    """More processes than CPUs only slow each other down: cap with a notice."""
    from pdekit.resources import available_cpus

    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    cpus = available_cpus()
    if workers > cpus:
        print(f"datagen: note: --workers {workers} capped to the {cpus} CPUs available", file=sys.stderr)
        return cpus
    return workers


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def human_size(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} PiB"


def check_resources(data_bytes: int, peak_bytes: int, folder: Path, what: str) -> None:
    """Refuse up front a run whose data cannot fit in memory or on disk (before any work)."""
    memory = available_memory()
    if peak_bytes > memory:
        raise UsageError(f"{what} needs about {peak_bytes} bytes ({human_size(peak_bytes)}) of memory; "
                         f"{human_size(memory)} are available (lower --n or --resolution, or split the run with --shard)")
    free = shutil.disk_usage(folder).free
    if 2 * data_bytes > free:  # the finished parts and the file exist together for a moment
        raise UsageError(f"{what} needs about {2 * data_bytes} bytes ({human_size(2 * data_bytes)}) of disk in {folder}; "
                         f"{human_size(free)} are free")


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text}: need 0 <= i < n")
    return i, n


def check_out(out: Path, overwrite: bool) -> None:
    if out.is_symlink():
        raise UsageError(f"--out {out} is a symbolic link; give the real path (links are never followed)")
    if out.exists() and not out.is_dir() and not out.is_file():
        raise UsageError(f"--out {out} is not a regular file (a device, socket or pipe); it is never replaced")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name (e.g. {out / 'data.h5'})")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {out}: folder {parent} does not exist")
    try:  # a real probe: access() says yes to root even on read-only or virtual file systems (/proc)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise UsageError(f"cannot write {out}: folder {parent} is not writable ({err.strerror})") from None
