"""The `datagen` command.

    datagen poisson --level hard|--spec level.yaml --n 100 --resolution 64 [--dim 2] --seed 0 --out hard.h5
                    [--workers 2] [--shard i/n] [--resume] [--overwrite]
    datagen navier-stokes --family periodic|obstacles --level medium --n 16 [--resolution 128] --out ns.h5
                    [--device cuda] [--batch 8] [--pressure-precond amg|ckpt] [--pressure-systems p.h5] (+ the above)
    datagen burgers --level hard --n 256 --out burgers.h5 (+ the above)
    datagen levels
    datagen ritz --level medium --resolution 32 --n 1000 [--lanczos-steps 600] --out ritz.h5
    datagen ritz --system pressure.h5:0 --n 1000 --out ritz_pressure.h5
    datagen merge shard0.h5 shard1.h5 --out all.h5
    datagen plot file.h5 [--out file.png] [--trajectory 0]
    datagen export file.h5 --format xdmf|vtu [--out path] [--samples 16 | --trajectory 0]
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


def _level(args, generator: str = "poisson"):
    """The level named by ``--spec`` (a YAML file) or else ``--level``."""
    from datagen.generators import resolve_level

    try:
        return resolve_level(generator, args.level, args.spec)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _generator(args) -> str:
    return f"navier_stokes_{args.family}" if args.command == "navier-stokes" else args.command


def _generate(args) -> int:
    """``datagen poisson | navier-stokes | burgers``: one path through the runner."""
    from datagen.burgers import BlowUpError
    from datagen.generators import config_for
    from datagen.runner import run

    generator = _generator(args)
    if (args.level is None) == (args.spec is None):
        raise UsageError("give exactly one of --level NAME or --spec level.yaml")
    level = _level(args, generator)
    resolution = args.resolution if args.resolution is not None else getattr(level, "resolution", None)
    if resolution is None:
        raise UsageError("--resolution is required")
    checks = [(args.n >= 1, f"--n must be >= 1, got {args.n}"),
              (resolution >= 8, f"--resolution must be >= 8, got {resolution}"),
              (args.workers >= 1, f"--workers must be >= 1, got {args.workers}")]
    extra = {}
    if generator == "poisson":
        checks.append((args.dim in (2, 3), f"--dim must be 2 or 3, got {args.dim}"))
        extra["dim"] = args.dim
    else:
        _check_device(args.device)
        extra["device"] = args.device
    if generator in ("navier_stokes_periodic", "burgers"):
        checks.append((args.batch >= 1, f"--batch must be >= 1, got {args.batch}"))
        extra["batch"] = args.batch
    if generator == "navier_stokes_obstacles":
        checks.append((0 < args.pressure_tol < 1, f"--pressure-tol must be in (0, 1), got {args.pressure_tol}"))
        extra.update(pressure_precond=_pressure_precond(args.pressure_precond), pressure_tol=args.pressure_tol)
        if args.pressure_systems:
            _check_out(Path(args.pressure_systems), args.overwrite)
            extra["pressure_systems"] = str(Path(args.pressure_systems))
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    out = Path(args.out)
    _check_out(out, args.overwrite)
    config = config_for(generator, level, args.n, resolution, args.seed, **extra)
    try:
        spent = run(config, out, workers=args.workers, shard=_shard(args.shard), resume=args.resume,
                    progress=not args.quiet)
    except (FileExistsError, ValueError, BlowUpError) as err:
        raise UsageError(str(err)) from None
    side = f" and {extra['pressure_systems']}" if extra.get("pressure_systems") else ""
    print(f"wrote {out}{side} ({spent['samples']} samples computed in {spent['wall']:.1f} s)")
    return 0


def _pressure_precond(value: str) -> str:
    from datagen.ns_channel import PRECONDITIONERS

    if value in PRECONDITIONERS:
        return value
    if not Path(value).is_file():
        raise UsageError(f"--pressure-precond must be one of {', '.join(PRECONDITIONERS)} or a checkpoint file, "
                         f"got {value!r}")
    return str(Path(value).resolve())


def _check_device(device: str) -> None:
    import torch

    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:
        raise UsageError(f"--device {device}: {str(err).splitlines()[0]}") from None


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
    _time_series_levels()
    return 0


def _time_series_levels() -> None:
    from datagen.burgers import LEVELS as BURGERS
    from datagen.navier_stokes import OBSTACLE_LEVELS, PERIODIC_LEVELS

    print("\nnavier-stokes --family periodic (vorticity; levels along viscosity and resolution)")
    print(f"{'level':<9} {'nu':>8} {'grid':>6} {'T':>5}  varies")
    for name, lv in PERIODIC_LEVELS.items():
        print(f"{name:<9} {lv.viscosity:>8.0e} {lv.resolution:>6} {lv.t_end:>5g}  {lv.description}")
    print("\nnavier-stokes --family obstacles (channel flow; level = <geometry>-<physics>, "
          "easy/medium/hard = both axes together)")
    print(f"{'level':<14} {'Re':>6} {'obstacles':>9} {'grid':>7}  varies")
    for name, lv in OBSTACLE_LEVELS.items():
        if "-" in name:
            grid = f"{int(lv.aspect * lv.resolution)}x{lv.resolution}"
            print(f"{name:<14} {lv.reynolds:>6g} {lv.obstacles[0]:>4}-{lv.obstacles[1]:<4} {grid:>7}  {lv.description}")
    print("\nburgers (1-D, periodic; levels along viscosity)")
    print(f"{'level':<9} {'nu':>8} {'grid':>6}  varies")
    for name, lv in BURGERS.items():
        print(f"{name:<9} {lv.viscosity:>8g} {lv.resolution:>6}  {lv.description}")


def _merge(args) -> int:
    from datagen.runner import merge
    from pdekit.data import DatasetFormatError

    out = Path(args.out)
    _check_out(out, args.overwrite)
    missing = [p for p in args.shards if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such file(s): {', '.join(missing)}")
    try:
        merge(args.shards, out)
    except (ValueError, DatasetFormatError) as err:
        raise UsageError(str(err)) from None
    print(f"wrote {out}")
    return 0


def _plot(args) -> int:
    from datagen.plot import plot
    from pdekit.data import DatasetFormatError

    try:
        written = plot(args.file, args.out, args.samples, animate=not args.no_animation, trajectory=args.trajectory)
    except (FileNotFoundError, DatasetFormatError, ValueError) as err:
        raise UsageError(str(err)) from None
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _system(text: str):
    """``FILE:INDEX`` (or ``FILE``: sample 0) of a stored Poisson-format system."""
    path, _, index = text.rpartition(":") if ":" in text else (text, "", "0")
    try:
        index = int(index)
    except ValueError:
        raise UsageError(f"--system must look like FILE:INDEX, got {text!r}") from None
    if not Path(path).is_file():
        raise UsageError(f"--system: no such file {path}")
    return Path(path), index


def _ritz(args) -> int:
    from datagen.ritz import GENERATOR_VERSION, generate_ritz
    from pdekit.data import DatasetFormatError, write_poisson

    system = _system(args.system) if args.system else None
    level = None if system else _level(args)
    if args.n < 1 or args.lanczos_steps < 2 or (system is None and (args.resolution or 0) < 8):
        raise UsageError("need --n >= 1, --lanczos-steps >= 2 and --resolution >= 8 (or --system FILE:INDEX)")
    out = Path(args.out)
    _check_out(out, args.overwrite)
    try:
        arrays, grid, info = generate_ritz(level, args.resolution, args.dim, args.n, args.lanczos_steps, args.seed,
                                           progress=not args.quiet, system=system)
    except (DatasetFormatError, IndexError, ValueError) as err:
        raise UsageError(str(err)) from None
    source = {"system": f"{system[0]}:{system[1]}"} if system else {"level": level.name, "resolution": args.resolution,
                                                                    "dim": args.dim}
    config = {"pde": "poisson", "kind": "ritz", "n": args.n, "seed": args.seed, "lanczos_steps": args.lanczos_steps,
              **source, **info}
    write_poisson(out, arrays, grid=grid, config=config, generator_version=GENERATOR_VERSION)
    print(f"wrote {out} ({args.n} Ritz vectors from {info['lanczos_steps']} Lanczos steps, "
          f"Ritz values {info['ritz_values_min']:.3g} .. {info['ritz_values_max']:.3g})")
    return 0


def _export(args) -> int:
    from datagen.export import export
    from pdekit.data import DatasetFormatError

    try:
        written = export(args.file, args.format, args.out, args.samples, trajectory=args.trajectory)
    except (FileNotFoundError, DatasetFormatError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(f"wrote {written[0]}" + (f" (+{len(written) - 1} more)" if len(written) > 1 else ""))
    return 0


def _common(p, resolution_help: str) -> None:
    """Arguments every generating command shares."""
    p.add_argument("--level", help="a named level (see `datagen levels`)")
    p.add_argument("--spec", help="YAML file with explicit level axes (keys as in the level; optional base: NAME)")
    p.add_argument("--n", type=int, required=True, help="number of samples")
    p.add_argument("--resolution", type=int, default=None, help=resolution_help)
    p.add_argument("--seed", type=int, default=0, help="sample k uses seed + k")
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=int, default=1, help="processes (one sample or batch per job)")
    p.add_argument("--shard", default="0/1",
                   help="i/n: generate the samples k with (k // batch) %% n == i (batch = 1 unless --batch)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_generate)


def _time_series(p, batch: int) -> None:
    p.add_argument("--device", default="cpu", help="torch device of the solver (cpu, cuda, cuda:1)")
    p.add_argument("--batch", type=int, default=batch, help="trajectories integrated together (batched FFTs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datagen", description="Generate PDE datasets with classical solvers.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("poisson", help="Poisson problems -div(a grad u) = f at a difficulty level")
    _common(p, "nodes per axis (required)")
    p.add_argument("--dim", type=int, default=2)
    ns = sub.add_parser("navier-stokes", help="2-D Navier-Stokes trajectories (periodic box or channel with obstacles)")
    ns.add_argument("--family", choices=("periodic", "obstacles"), required=True)
    _common(ns, "grid points per axis (periodic) or cells across the channel (obstacles); default: the level's")
    _time_series(ns, batch=8)
    ns.add_argument("--pressure-precond", default="amg",
                    help="obstacles: pressure preconditioner amg|jacobi|ilu|none or a trained pdekit checkpoint")
    ns.add_argument("--pressure-tol", type=float, default=1e-6,
                    help="obstacles: relative residual of each pressure solve (= divergence after the step)")
    ns.add_argument("--pressure-systems", default=None,
                    help="obstacles: also save every snapshot's pressure system as a Poisson-format dataset here")
    bg = sub.add_parser("burgers", help="1-D viscous Burgers trajectories at a difficulty level")
    _common(bg, "grid points (default: the level's)")
    _time_series(bg, batch=32)
    lv = sub.add_parser("levels", help="list difficulty levels with measured solver iterations")
    lv.add_argument("--resolution", type=int, default=32)
    lv.set_defaults(run=_levels)
    m = sub.add_parser("merge", help="join shard files into one dataset")
    m.add_argument("shards", nargs="+")
    m.add_argument("--out", required=True)
    m.add_argument("--overwrite", action="store_true")
    m.set_defaults(run=_merge)
    pl = sub.add_parser("plot", help="PNG of a few samples (Poisson: a, mask, f, u; time series: snapshots) "
                                      "and a GIF/MP4 of one trajectory")
    pl.add_argument("file")
    pl.add_argument("--out", default=None, help="PNG path (default: next to the file)")
    pl.add_argument("--samples", type=int, default=4)
    pl.add_argument("--trajectory", type=int, default=0, help="time series: the sample to animate")
    pl.add_argument("--no-animation", action="store_true", help="time series: PNG only")
    pl.set_defaults(run=_plot)
    rz = sub.add_parser("ritz", help="DCDM training vectors: Ritz vectors of one operator of a level")
    rz.add_argument("--level", default="medium")
    rz.add_argument("--spec", default=None, help="YAML level spec instead of --level")
    rz.add_argument("--system", default=None,
                    help="FILE:INDEX: the operator of a stored system instead of a level (e.g. a pressure system)")
    rz.add_argument("--resolution", type=int, default=None, help="with --level: nodes per axis")
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
    ex.add_argument("--samples", type=int, default=16, help="Poisson: export the first N samples")
    ex.add_argument("--trajectory", type=int, default=0, help="time series: the sample whose snapshots to export")
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
