"""Generation cost of datasets per level, from each sample's own record: what a training set of
a given mix costs to generate (``datagen cost``; the difficulty-transfer study budgets with it).

The per-sample cost is the solver's time as the generator measured it: ``solve_seconds``
(Poisson: the linear solve), ``wall_seconds`` (time series: the whole trajectory), ``seconds``
(Feynman–Kac labels).
"""
from __future__ import annotations

import numpy as np

from pdekit.files.dataset import level_names, open_dataset

COST_FIELDS = ("solve_seconds", "wall_seconds", "seconds")


def sample_costs(path) -> tuple[np.ndarray, list[str], str]:
    """(seconds per sample, level per sample, the field they came from) of one dataset file."""
    with open_dataset(path) as h5:
        field = next((name for name in COST_FIELDS if name in h5), None)
        if field is None:
            raise ValueError(f"{path} records no per-sample generation cost (none of {', '.join(COST_FIELDS)})")
        return np.asarray(h5[field][()], np.float64), level_names(h5), field


def cost_by_level(paths) -> list[dict]:
    """One row per level over all files: samples, total / mean / median seconds, and the mean
    solver iterations where recorded."""
    rows = {}
    for path in paths:
        seconds, levels, field = sample_costs(path)
        with open_dataset(path) as h5:
            iterations = np.asarray(h5["solver_iterations"][()], np.float64) if "solver_iterations" in h5 else None
        for level in dict.fromkeys(levels):
            pick = np.array([name == level for name in levels])
            row = rows.setdefault(level, {"level": level, "field": field, "seconds": [], "iterations": []})
            row["seconds"].extend(seconds[pick].tolist())
            if iterations is not None:
                row["iterations"].extend(iterations[pick].tolist())
    out = []
    for row in rows.values():
        s = np.asarray(row["seconds"])
        out.append({"level": row["level"], "samples": len(s), "total_seconds": float(s.sum()),
                    "mean_seconds": float(s.mean()), "median_seconds": float(np.median(s)),
                    "mean_iterations": float(np.mean(row["iterations"])) if row["iterations"] else None,
                    "field": row["field"]})
    return out
