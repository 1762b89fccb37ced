"""Experiment (not a test): does NPSolver hold up on sources and geometries its training never saw,
and does training on a breadth of source families (``data.init_args.sources``) help?

Two BA-Transolvers (experiments/configs/npsolver_small.yaml, 0.1 M parameters) trained label-free
(PCG supervision) for the same steps on the `medium` and `hard` 64² files of npsolver_study:

  fourier   the files' own sources (random Fourier modes, what every datagen level draws)
  breadth   each training sample's source drawn anew every epoch from all five families of
            pdekit.sources (fourier, constant, smooth, gaussians, piecewise); same geometries

Tested with the final weights (no selection on test data) at 64², new seeds (100000 on):

  medium, hard            the held-out files as generated (fourier sources)
  medium + <family>       medium's geometries and coefficients (the same seeds) with constant,
                          smooth, gaussians or piecewise sources
  L-shape                 the unit square without its upper-right quadrant: Dirichlet box faces,
                          insulated (Neumann) re-entrant walls, a = 1, sources of all five families
  bent channel            a channel of width 0.3 along y ∈ [0.2, 0.5] turning up through
                          x ∈ [0.5, 0.8]: Dirichlet at its two open ends, insulated walls, a = 1,
                          sources of all five families

No level generates the last two geometries.  Relative L2 against the classical solution.

    python -m experiments.studies.npsolver_generalisation [--steps 600] [--test 40]
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from experiments.common import enter_base, print_table, pyplot, refuse, save_figure, write_json
from experiments.studies.npsolver_study import DATA_2D, evaluate_files, make_files, train
from pdekit.sources import SOURCE_FAMILIES, draw_source

ARMS = {"fourier": None, "breadth": list(SOURCE_FAMILIES)}
HELD_OUT_FAMILIES = ("constant", "smooth", "gaussians", "piecewise")
TEST_SEED, RESOLUTION = 100000, 64


def geometry_mask(name: str, coords) -> np.ndarray:
    x, y = coords
    if name == "lshape":
        return ~((x > 0.5) & (y > 0.5))
    if name == "bent-channel":
        along = (y >= 0.2) & (y <= 0.5) & (x <= 0.8)
        up = (x >= 0.5) & (x <= 0.8) & (y >= 0.2)
        return along | up
    raise ValueError(name)


def geometry_samples(name: str, count: int) -> list[dict]:
    """``count`` solved samples on geometry ``name`` (sources cycling through the five families)."""
    from datagen.poisson import solve_problem
    from pdekit import BoundaryConditions, Dirichlet, Grid, Neumann

    bc = BoundaryConditions(default=Dirichlet(0.0), obstacle=Neumann(0.0))
    grid = Grid.box((RESOLUTION, RESOLUTION), 1.0, bc)
    coords = grid.coordinates()
    mask = geometry_mask(name, coords)
    samples = []
    for i in range(count):
        rng = np.random.default_rng([TEST_SEED, i])
        family = SOURCE_FAMILIES[i % len(SOURCE_FAMILIES)]
        f = draw_source(family, rng, coords) * mask
        out = solve_problem(grid, np.ones(grid.shape), mask, bc, f)
        out.pop("grid")
        out.update(level=name, seed=TEST_SEED + i, sample_index=i, sample_seconds=0.0, spacing=np.asarray(grid.spacing),
                   origin=np.asarray(grid.origin))
        samples.append(out)
    return samples


def make_test_files(data: Path, count: int) -> dict[str, Path]:
    """{row label: file}: the held-out families on medium's geometries and the two new geometries
    (made once; samples are pure functions of their seeds)."""
    from datagen import kinds, runner
    from datagen.generators import config_for
    from datagen.poisson import LEVELS

    files = {"medium": data / "medium_64_test.h5", "hard": data / "hard_64_test.h5"}
    for family in HELD_OUT_FAMILIES:
        path = files[f"medium + {family}"] = data / f"medium_64_test_{family}_{count}.h5"
        if not path.exists():
            level = replace(LEVELS["medium"], source=family)  # the name (so the draws) stays medium's
            runner.run(config_for("poisson", level, count, RESOLUTION, seed=TEST_SEED, dim=2), path, progress=False)
    for name, label in (("lshape", "L-shape"), ("bent-channel", "bent channel")):
        path = files[label] = data / f"{name}_64_test_{count}.h5"
        if not path.exists():
            config = {"generator": "poisson", "pde": "poisson", "level": name, "n": count, "resolution": RESOLUTION,
                      "seed": TEST_SEED, "dim": 2, "sources": list(SOURCE_FAMILIES),
                      "note": "npsolver_generalisation: a geometry no level generates"}
            kinds.get("poisson").write(path, geometry_samples(name, count), config)
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--test", type=int, default=40, help="samples per held-out set")
    parser.add_argument("--base", default=".", help="runs/ is made here (data, checkpoints, logs)")
    parser.add_argument("--out", default="experiments/results/npsolver_generalisation")
    args = parser.parse_args()
    if args.steps < 1 or not 1 <= args.test <= 1000:
        refuse("need --steps >= 1 and --test in 1..1000")
    out, data = enter_base(args, "runs/npsolver/data")
    make_files(data, DATA_2D[:4])
    tests = make_test_files(data, args.test)
    rows = []
    for arm, sources in ARMS.items():
        result = train(arm, {"loss": "pcg"}, [data / "medium_64.h5", data / "hard_64.h5"], args.steps,
                       Path("runs/npsolver_generalisation") / arm, data_overrides={"sources": sources})
        row = {"training sources": arm, "train s": result["seconds"]}
        if result["code"] == 0:
            for label, path in tests.items():
                per_level = evaluate_files(result["checkpoint"], [path], out / arm / label.replace(" ", "_"))
                row[label] = float(np.mean([m["rel_l2_mean"] for m in per_level.values()]))
        rows.append(row)
        print(row, flush=True)
    print_table(f"NPSolver generalisation: BA-Transolver 4x64, {args.steps} PCG-supervised steps on medium+hard 64^2; "
                f"relative L2 on {args.test} held-out samples per set", rows)
    write_json(out / "results.json", {"steps": args.steps, "test": args.test, "rows": rows})
    families_figure(out / "source_families.png")


def families_figure(path: Path) -> None:
    """One draw of each source family on the unit square, and the two new geometries' masks."""
    from pdekit import Grid

    plt = pyplot()
    coords = Grid.box((RESOLUTION, RESOLUTION), 1.0).coordinates()
    fig, axes = plt.subplots(1, len(SOURCE_FAMILIES) + 2, figsize=(2.3 * (len(SOURCE_FAMILIES) + 2), 2.6),
                             layout="constrained")
    for ax, family in zip(axes, SOURCE_FAMILIES):
        f = draw_source(family, np.random.default_rng([TEST_SEED, 1]), coords)
        ax.imshow(f.T, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(family)
    for ax, name in zip(axes[len(SOURCE_FAMILIES):], ("lshape", "bent-channel")):
        ax.imshow(geometry_mask(name, coords).T, origin="lower", extent=(0, 1, 0, 1), cmap="Greys_r")
        ax.set_title(f"{name} (domain white)", fontsize=9)
    for ax in axes:
        ax.set(xticks=[], yticks=[])
    save_figure(fig, path)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
