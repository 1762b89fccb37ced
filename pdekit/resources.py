"""What pdekit's commands take from the machine: torch threads and devices.

Threads: torch's default pool takes every core and spins while it waits, so beside another
CPU-heavy process both slow down many times over (measured in
``experiments/benchmarks/bench_training.py --contention``).  ``pdekit fit|validate|test|predict``,
``evaluate`` and ``check`` therefore size the pool from the cores that are idle when they start:
``threads = cores - (other runnable threads)``, at least 1.  ``PDEKIT_THREADS=N`` sets it
explicitly (``OMP_NUM_THREADS`` is respected as well).
"""
from __future__ import annotations

import os
import time

THREADS_VARIABLE = "PDEKIT_THREADS"


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _busy_elsewhere(samples: int = 5, pause: float = 0.02) -> int:
    """Threads runnable right now besides this one (Linux ``/proc/loadavg``; 0 where unknown).
    The largest of a few samples: a competitor's threads may be waiting at any one instant."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as handle:
                running = int(handle.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(running - 1)  # this process is running while it reads
        if i + 1 < samples:
            time.sleep(pause)
    return max(0, max(counts))


def thread_variable() -> int | None:
    """``$PDEKIT_THREADS`` if set, else ``$OMP_NUM_THREADS`` if set, else None; a value that is not
    a positive integer is a one-line ConfigError."""
    from pdekit.errors import ConfigError

    for name in (THREADS_VARIABLE, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
            return int(value)
    return None


def default_threads() -> int:
    """``$PDEKIT_THREADS`` if set, else ``$OMP_NUM_THREADS`` if set, else the idle cores (>= 1)."""
    chosen = thread_variable()
    if chosen is not None:
        return chosen
    cpus = available_cpus()
    return max(1, min(cpus, cpus - _busy_elsewhere()))


def limit_threads() -> int:
    """Set torch's intra-op thread count to :func:`default_threads`; returns it."""
    import torch

    threads = default_threads()
    torch.set_num_threads(threads)
    return threads


def check_device(device) -> str:
    """``device`` as a string if torch can use it here; else ``ValueError`` saying why."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {device!r} is not a torch device (use cpu, cuda, cuda:1, mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else "no CUDA device visible"
            raise ValueError(f"device {device!r}: CUDA is not available here ({build}); use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r}: MPS is not available here; use --device cpu")
    elif parsed.type != "cpu":
        raise ValueError(f"device {device!r}: pdekit runs on cpu, cuda or mps")
    return str(parsed)
