"""Benchmark of `datagen poisson` (not a test): samples/s per level and where the time goes.

1. Per level at 64^2, 256^2 and 32^3: samples/s of a whole run (one worker), split into sampling
   (geometry, coefficient, source, operator), solve, and I/O (per-sample parts + the HDF5 file),
   as shares of the summed time.
2. Scaling: the same run with --workers 1 and --workers 2.

    python -m experiments.benchmarks.bench_datagen [--small] [--out results.json]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from datagen import generators, runner
from datagen.poisson import LEVELS
from experiments.common import print_table, write_json


def config_for(level, n, resolution, dim, seed=0):
    return generators.config_for("poisson", level, n, resolution, seed, dim=dim)


def run(config, workers=1):
    with tempfile.TemporaryDirectory() as tmp:
        return runner.run(config, Path(tmp) / "bench.h5", workers=workers, progress=False)


def level_table(sizes):
    rows = []
    for resolution, dim, n in sizes:
        for level in LEVELS:
            spent = run(config_for(level, n, resolution, dim))
            total = spent["compute"] + spent["io"]
            sampling = spent["compute"] - spent["solve_seconds"]  # drawing the problem and checking the solve
            rows.append({"grid": f"{resolution}^{dim}", "level": level, "samples": n,
                         "samples_per_s": n / spent["wall"], "sampling_pct": 100 * sampling / total,
                         "solve_pct": 100 * spent["solve_seconds"] / total, "io_pct": 100 * spent["io"] / total})
    return rows


def scaling_table(cases):
    rows = []
    for level, resolution, dim, n in cases:
        config = config_for(level, n, resolution, dim)
        one, two = run(config, 1), run(config, 2)
        rows.append({"case": f"{level} {resolution}^{dim} x{n}", "workers1_s": one["wall"], "workers2_s": two["wall"],
                     "speedup": one["wall"] / two["wall"]})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--out", default=None, help="write the tables as JSON")
    args = parser.parse_args()
    if args.small:
        sizes, cases = [(32, 2, 4)], [("hard", 32, 2, 8)]
    else:
        sizes = [(64, 2, 16), (256, 2, 6), (32, 3, 4)]
        cases = [("hard", 64, 2, 200), ("hard", 256, 2, 32), ("medium", 32, 3, 24)]
    print(f"# datagen benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    tables = {"levels": level_table(sizes), "workers": scaling_table(cases)}
    print_table("1. samples/s per level (1 worker) and shares of time", tables["levels"])
    print_table("2. --workers 2 vs 1 (wall seconds of the whole run)", tables["workers"])
    if args.out:
        write_json(args.out, tables)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
