"""The ``datagen`` command.

Usage::

    datagen poisson --level hard|--spec level.yaml --n 100 --resolution 64 [--dim 2] --seed 0 --out hard.h5
                    [--workers 2] [--shard i/n] [--resume] [--overwrite]
    datagen navier-stokes --family periodic|obstacles --level medium --n 16 [--resolution 128] --out ns.h5
                    [--device cuda] [--batch 8] [--pressure-precond amg|ckpt] [--pressure-systems p.h5] (+ the above)
    datagen burgers --level hard --n 256 --out burgers.h5 (+ the above)
    datagen feynman-kac --problem poisson-ball-10d --n 200 --paths 1000 [--sampler walk-on-spheres|euler-maruyama]
                    --out labels.h5 (+ --seed, --device, --batch, --workers, --shard, --resume, --overwrite)
    datagen levels
    datagen ritz --level medium --resolution 32 --n 1000 [--lanczos-steps 600] --out ritz.h5
    datagen ritz --system pressure.h5:0 --n 1000 --out ritz_pressure.h5
    datagen merge shard0.h5 shard1.h5 --out all.h5
    datagen cost easy.h5 hard.h5
    datagen plot file.h5 [--out file.png] [--trajectory 0]
    datagen export file.h5 --format xdmf|vtu [--out path] [--samples 16 | --trajectory 0]
    datagen export file.h5 --format the-well [--out folder]
"""
from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

from datagen import tools
from datagen.checks import cap_workers, check_out, check_resources, check_seed, parse_shard
from datagen.kinds import UsageError, commands
from datagen.tools import SPLIT_DEFAULT, level_of


def _kind(args):
    """The dataset kind a generating command runs (``navier-stokes --family`` picks one of two)."""
    kinds = commands()[args.command]
    if len(kinds) == 1:
        return kinds[0]
    return next(kind for kind in kinds if kind.family == args.family)


def _generate(args) -> int:
    """Every generating command (``poisson``, ``navier-stokes``, ``burgers``, ``feynman-kac``, a kind
    of your own): one path through its kind's checks and the runner."""
    kind = _kind(args)
    level = resolution = None
    if kind.has_levels:
        if (args.level is None) == (args.spec is None):
            raise UsageError("give exactly one of --level NAME or --spec level.yaml")
        level = level_of(args, kind.name)
        resolution = args.resolution if args.resolution is not None else getattr(level, "resolution", None)
        if resolution is None:
            raise UsageError("--resolution is required")
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    if resolution is not None and resolution < 8:
        raise UsageError(f"--resolution must be >= 8, got {resolution}")
    extra = kind.options(args, level)
    check_seed(args.seed, args.n)
    shard = parse_shard(args.shard)
    out = Path(args.out)
    check_out(out, args.overwrite)
    config = kind.config(args, level, resolution, extra)
    data_bytes, peak_bytes = kind.estimate_bytes(config, -(-args.n // shard[1]))
    check_resources(data_bytes, peak_bytes, out.resolve().parent, kind.resource_hint(args, config))
    spent = _run_generator(args, config, out, shard)
    side = "".join(f" and {path}" for path in kind.outputs(config))
    print(f"wrote {out}{side} ({spent['samples']} {kind.noun} computed in {spent['wall']:.1f} s)")
    kind.after_write(out)
    return 0


def _run_generator(args, config: dict, out: Path, shard) -> dict:
    """The runner (workers, shards, resume, atomic output) with its failures as one-line errors."""
    from datagen.burgers import BlowUpError
    from datagen.generators import GenerationError
    from datagen.runner import RunInUseError, StaleRunError, run

    workers = cap_workers(args.workers)
    try:
        return run(config, out, workers=workers, shard=shard, resume=args.resume, overwrite=args.overwrite,
                   progress=not args.quiet)
    except StaleRunError as err:
        command = _command_line(args.argv)
        raise UsageError(f"{err.parts} holds an interrupted run: `{command} --resume` continues it, "
                         f"`{command} --overwrite` starts over") from None
    except (RunInUseError, ValueError, BlowUpError, GenerationError) as err:
        raise UsageError(str(err)) from None


def _levels(args) -> int:
    if not 8 <= args.resolution <= 256:
        raise UsageError(f"--resolution must be in 8..256 (iterations are measured now), got {args.resolution}")
    for kinds in commands().values():
        for kind in kinds:
            kind.print_levels(args)
    return 0


def _command_line(argv) -> str:
    """The command as the user typed it, without --resume/--overwrite (the message adds one)."""
    kept = [a for a in argv if a not in ("--resume", "--overwrite")]
    return " ".join(shlex.quote(a) for a in ["datagen", *kept])


def _add_common(p, kind) -> None:
    """The options every generating command shares (the level ones where the kind has levels)."""
    if kind.has_levels:
        p.add_argument("--level", help="a named level (see `datagen levels`)")
        p.add_argument("--spec", help="YAML file with explicit level axes (keys as in the level; optional base: NAME)")
    p.add_argument("--n", type=int, required=True, help=f"number of {kind.noun}")
    if kind.has_levels:
        p.add_argument("--resolution", type=int, default=None, help=kind.resolution_help)
    p.add_argument("--seed", type=int, default=0, help="sample k uses seed + k (seed >= 0; default 0)")
    p.add_argument("--out", required=True, help="the HDF5 file to write (atomically, when every sample is done)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes (one sample or batch per job; capped at the CPU count; default 1)")
    p.add_argument("--shard", default="0/1",
                   help="i/n: generate the samples k with (k // batch) %% n == i (batch: --batch)" if kind.batched else
                   "i/n: generate the samples k with k %% n == i; join the n files with `datagen merge`")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run (kept in <out>.parts/)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out (and discard an interrupted run's parts)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    kind.add_arguments(p)
    p.set_defaults(run=_generate)


def build_parser():
    from pdekit.learning.cli import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="datagen", description="Generate PDE datasets with classical solvers.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command, kinds in commands().items():  # one subcommand per registered kind (kinds sharing one: --family)
        _add_common(sub.add_parser(command, help=kinds[0].help), kinds[0])
    lv = sub.add_parser("levels", help="list difficulty levels with measured solver iterations")
    lv.add_argument("--resolution", type=int, default=32,
                    help="Poisson grid on which iterations are measured (default 32)")
    lv.set_defaults(run=_levels)
    m = sub.add_parser("merge", help="join shard files into one dataset")
    m.add_argument("shards", nargs="+", help="the files of every --shard i/n of one run")
    m.add_argument("--out", required=True, help="the merged HDF5 file")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    m.set_defaults(run=tools.merge_files)
    co = sub.add_parser("cost", help="generation cost per level of datasets (from each sample's recorded solve time)")
    co.add_argument("files", nargs="+", help="pdekit datasets")
    co.set_defaults(run=tools.cost)
    pl = sub.add_parser("plot", help="PNG of a few samples (Poisson: a, mask, f, u; time series: snapshots) "
                                      "and a GIF/MP4 of one trajectory")
    pl.add_argument("file", help="a pdekit dataset")
    pl.add_argument("--out", default=None, help="PNG path (default: next to the file)")
    pl.add_argument("--samples", type=int, default=4, help="samples shown (default 4)")
    pl.add_argument("--trajectory", type=int, default=0, help="time series: the sample to animate")
    pl.add_argument("--no-animation", action="store_true", help="time series: PNG only")
    pl.set_defaults(run=tools.plot)
    rz = sub.add_parser("ritz", help="DCDM training vectors: Ritz vectors of one operator of a level")
    rz.add_argument("--level", default="medium", help="the Poisson level whose operator is used (default medium)")
    rz.add_argument("--spec", default=None, help="YAML level spec instead of --level")
    rz.add_argument("--system", default=None,
                    help="FILE:INDEX: the operator of a stored system instead of a level (e.g. a pressure system)")
    rz.add_argument("--resolution", type=int, default=None, help="with --level: nodes per axis")
    rz.add_argument("--dim", type=int, default=2, help="with --level: 2 or 3 (default 2)")
    rz.add_argument("--n", type=int, required=True, help="number of vectors")
    rz.add_argument("--lanczos-steps", type=int, default=600, help="Lanczos steps (default 600)")
    rz.add_argument("--seed", type=int, default=0, help="seed of the start vector and the mixing (>= 0; default 0)")
    rz.add_argument("--out", required=True, help="the HDF5 file to write (Poisson format)")
    rz.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    rz.add_argument("--quiet", action="store_true", help="no progress bar")
    rz.set_defaults(run=tools.ritz)
    ex = sub.add_parser("export", help="meshio files for ParaView (XDMF series or one VTU per sample), or The Well")
    ex.add_argument("file", help="a pdekit dataset")
    ex.add_argument("--format", choices=("xdmf", "vtu", "the-well"), default="xdmf",
                    help="xdmf: one time series (+ .h5 sidecar); vtu: one file per sample or snapshot; the-well: "
                         "time series in The Well's HDF5 layout (a folder WellDataset reads)")
    ex.add_argument("--out", default=None, help="default: <file stem>-paraview.xdmf, folder <stem>-paraview/ (vtu) or folder <stem>-the-well/")
    ex.add_argument("--samples", type=int, default=16, help="Poisson: export the first N samples")
    ex.add_argument("--trajectory", type=int, default=0, help="time series: the sample whose snapshots to export")
    ex.add_argument("--split", default=SPLIT_DEFAULT,
                    help="the-well: train,valid,test fractions of the trajectories (default 0.8,0.1,0.1)")
    ex.add_argument("--seed", type=int, default=0, help="the-well: seed of the split (default 0)")
    ex.add_argument("--overwrite", action="store_true", help="replace existing output files (never by default)")
    ex.set_defaults(run=tools.export)
    return parser


def _terminate(signum, frame):
    from datagen.runner import Interrupted

    raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


def main(argv=None) -> int:
    from pdekit.errors import os_error_message, quiet_hdf5_destructors

    quiet_hdf5_destructors()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        parser = build_parser()
    except UsageError as err:  # a dataset kind named in $DATAGEN_KINDS that cannot be loaded
        print(f"datagen: error: {err}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    args.argv = argv
    previous = signal.signal(signal.SIGTERM, _terminate) if _main_thread() else None
    try:
        return args.run(args)
    except UsageError as err:
        print(f"datagen: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # unwritable or missing system locations, full disks
        print(f"datagen: error: {os_error_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # datagen.runner.Interrupted too (SIGTERM)
        print(f"datagen: interrupted{': ' + str(err) if str(err) else ''}; finished samples are kept: "
              f"`{_command_line(argv)} --resume` continues", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
