"""The `datagen` command.

    datagen poisson --level hard|--spec level.yaml --n 100 --resolution 64 [--dim 2] --seed 0 --out hard.h5
                    [--workers 2] [--shard i/n] [--resume] [--overwrite]
    datagen levels
    datagen ritz --level medium --resolution 32 --n 1000 [--lanczos-steps 600] --out ritz.h5
    datagen merge shard0.h5 shard1.h5 --out all.h5
    datagen plot file.h5 [--out file.png]
    datagen export file.h5 --format xdmf|vtu [--out path] [--samples 16]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class UsageError(Exception):
    """Bad arguments: reported as one line, exit status 2."""


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text}: need 0 <= i < n")
    return i, n


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {out}: folder {parent} is not writable")


def _level(args):
    """The level named by ``--spec`` (a YAML file) or else ``--level``."""
    from datagen.poisson import load_level_spec, resolve_level

    try:
        return load_level_spec(args.spec) if args.spec else resolve_level(args.level)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _poisson(args) -> int:
    from dataclasses import asdict

    from datagen.runner import run_poisson

    if (args.level is None) == (args.spec is None):
        raise UsageError("give exactly one of --level NAME or --spec level.yaml")
    level = _level(args)
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    if args.resolution < 8:
        raise UsageError(f"--resolution must be >= 8, got {args.resolution}")
    if args.dim not in (2, 3):
        raise UsageError(f"--dim must be 2 or 3, got {args.dim}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    out = Path(args.out)
    _check_out(out, args.overwrite)
    config = {"pde": "poisson", "level": level.name, "level_spec": asdict(level), "n": args.n, "resolution": args.resolution,
              "dim": args.dim, "seed": args.seed}
    try:
        run_poisson(config, out, workers=args.workers, shard=_shard(args.shard), resume=args.resume,
                    progress=not args.quiet)
    except (FileExistsError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(f"wrote {out}")
    return 0


def _levels(args) -> int:
    import numpy as np

    from datagen.poisson import LEVELS, sample_problem
    from pdekit import DiffusionOperator
    from pdekit.krylov import cg, pcg
    from pdekit.precond import AMG

    print(f"poisson levels (typical iterations to 1e-8, measured now at {args.resolution}^2 over 2 seeds)")
    print(f"{'level':<9} {'CG':>7} {'AMG-PCG':>8}  varies")
    for name, level in LEVELS.items():
        its = []
        for seed in range(2):
            grid, a, mask, bc, f = sample_problem(name, args.resolution, 2, seed)
            op = DiffusionOperator(grid, a, mask, bc)
            b = op.rhs(f)
            its.append((int(cg(op, b, tol=1e-8, maxiter=100000).iterations),
                        int(pcg(op, b, AMG(op), tol=1e-8).iterations)))
        mean = np.mean(its, axis=0)
        print(f"{name:<9} {mean[0]:>7.0f} {mean[1]:>8.1f}  {level.description}")
    return 0


def _merge(args) -> int:
    from datagen.runner import merge_poisson

    out = Path(args.out)
    _check_out(out, args.overwrite)
    missing = [p for p in args.shards if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such file(s): {', '.join(missing)}")
    try:
        merge_poisson(args.shards, out)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"wrote {out}")
    return 0


def _plot(args) -> int:
    from datagen.plot import plot_poisson
    from pdekit.data import DatasetFormatError

    try:
        out = plot_poisson(args.file, args.out, args.samples)
    except (FileNotFoundError, DatasetFormatError) as err:
        raise UsageError(str(err)) from None
    print(f"wrote {out}")
    return 0


def _ritz(args) -> int:
    from datagen.ritz import GENERATOR_VERSION, generate_ritz
    from pdekit.data import write_poisson

    level = _level(args)
    if args.n < 1 or args.lanczos_steps < 2 or args.resolution < 8:
        raise UsageError("need --n >= 1, --lanczos-steps >= 2, --resolution >= 8")
    out = Path(args.out)
    _check_out(out, args.overwrite)
    arrays, grid, info = generate_ritz(level, args.resolution, args.dim, args.n, args.lanczos_steps, args.seed,
                                       progress=not args.quiet)
    config = {"pde": "poisson", "kind": "ritz", "level": level.name, "n": args.n, "resolution": args.resolution,
              "dim": args.dim, "seed": args.seed, "lanczos_steps": args.lanczos_steps, **info}
    write_poisson(out, arrays, grid=grid, config=config, generator_version=GENERATOR_VERSION)
    print(f"wrote {out} ({args.n} Ritz vectors from {info['lanczos_steps']} Lanczos steps, "
          f"Ritz values {info['ritz_values_min']:.3g} .. {info['ritz_values_max']:.3g})")
    return 0


def _export(args) -> int:
    from datagen.export import export_poisson
    from pdekit.data import DatasetFormatError

    try:
        written = export_poisson(args.file, args.format, args.out, args.samples)
    except (FileNotFoundError, DatasetFormatError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(f"wrote {written[0]}" + (f" (+{len(written) - 1} more)" if len(written) > 1 else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datagen", description="Generate PDE datasets with classical solvers.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("poisson", help="Poisson problems -div(a grad u) = f at a difficulty level")
    p.add_argument("--level", help="a named level (see `datagen levels`)")
    p.add_argument("--spec", help="YAML file with explicit level axes (keys as in `datagen levels`)")
    p.add_argument("--n", type=int, required=True, help="number of samples")
    p.add_argument("--resolution", type=int, required=True, help="nodes per axis")
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="sample k uses seed + k")
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--shard", default="0/1", help="i/n: generate samples k with k %% n == i")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_poisson)
    lv = sub.add_parser("levels", help="list difficulty levels with measured solver iterations")
    lv.add_argument("--resolution", type=int, default=32)
    lv.set_defaults(run=_levels)
    m = sub.add_parser("merge", help="join shard files into one dataset")
    m.add_argument("shards", nargs="+")
    m.add_argument("--out", required=True)
    m.add_argument("--overwrite", action="store_true")
    m.set_defaults(run=_merge)
    pl = sub.add_parser("plot", help="PNG grid of a few samples (coefficient, mask, source, solution)")
    pl.add_argument("file")
    pl.add_argument("--out", default=None, help="PNG path (default: next to the file)")
    pl.add_argument("--samples", type=int, default=4)
    pl.set_defaults(run=_plot)
    rz = sub.add_parser("ritz", help="DCDM training vectors: Ritz vectors of one operator of a level")
    rz.add_argument("--level", default="medium")
    rz.add_argument("--spec", default=None, help="YAML level spec instead of --level")
    rz.add_argument("--resolution", type=int, required=True)
    rz.add_argument("--dim", type=int, default=2)
    rz.add_argument("--n", type=int, required=True, help="number of vectors")
    rz.add_argument("--lanczos-steps", type=int, default=600)
    rz.add_argument("--seed", type=int, default=0)
    rz.add_argument("--out", required=True)
    rz.add_argument("--overwrite", action="store_true")
    rz.add_argument("--quiet", action="store_true")
    rz.set_defaults(run=_ritz)
    ex = sub.add_parser("export", help="meshio files for ParaView (XDMF series or one VTU per sample)")
    ex.add_argument("file")
    ex.add_argument("--format", choices=("xdmf", "vtu"), default="xdmf")
    ex.add_argument("--out", default=None, help="default: <file stem>-paraview.xdmf or folder <stem>-paraview/")
    ex.add_argument("--samples", type=int, default=16, help="export the first N samples")
    ex.set_defaults(run=_export)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as err:
        print(f"datagen: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
