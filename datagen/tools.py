"""The ``datagen`` commands that do not run a dataset kind: ``merge``, ``cost``, ``plot``, ``ritz`` and
``export`` (argument checks around :mod:`datagen.runner`, :mod:`datagen.cost`, :mod:`datagen.plot`,
:mod:`datagen.ritz` and :mod:`datagen.export`)."""
from __future__ import annotations

import shutil
from pathlib import Path

from datagen.checks import check_out, check_resources, check_seed, human_size
from datagen.kinds import UsageError


def level_of(args, generator: str):
    """The level named by ``--spec`` (a YAML file) or else ``--level``."""
    from datagen.generators import resolve_level

    try:
        return resolve_level(generator, args.level, args.spec)
    except ValueError as err:
        raise UsageError(str(err)) from None


def merge_files(args) -> int:
    from datagen.runner import merge
    from pdekit.files.dataset import DatasetFormatError

    out = Path(args.out)
    check_out(out, args.overwrite)
    missing = [p for p in args.shards if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such file(s): {', '.join(missing)}")
    if any(Path(p).resolve() == out.resolve() for p in args.shards):
        raise UsageError(f"--out {out} is also one of the shards to merge")
    try:
        merge(args.shards, out)
    except (ValueError, DatasetFormatError) as err:
        raise UsageError(str(err)) from None
    print(f"wrote {out}")
    return 0


def cost(args) -> int:
    from datagen.cost import cost_by_level
    from pdekit.files.dataset import DatasetFormatError

    try:
        rows = cost_by_level(args.files)
    except (FileNotFoundError, DatasetFormatError, ValueError) as err:
        raise UsageError(str(err)) from None
    cheapest = min(row["mean_seconds"] for row in rows) or 1e-300
    print(f"generation cost per level ({rows[0]['field']}, as each sample recorded it)")
    width = max(14, *(len(row["level"]) + 1 for row in rows))
    print(f"{'level':<{width}} {'samples':>7} {'total s':>10} {'mean s':>10} {'median s':>10} {'× cheapest':>10} "
          f"{'iterations':>10}")
    for row in rows:
        iterations = f"{row['mean_iterations']:>10.1f}" if row["mean_iterations"] is not None else f"{'':>10}"
        print(f"{row['level']:<{width}} {row['samples']:>7} {row['total_seconds']:>10.3g} {row['mean_seconds']:>10.3g} "
              f"{row['median_seconds']:>10.3g} {row['mean_seconds'] / cheapest:>10.1f} {iterations}")
    return 0


def plot(args) -> int:
    from datagen.plot import plot as write_plots
    from pdekit.files.dataset import DatasetFormatError

    if args.samples < 1 or args.trajectory < 0:
        raise UsageError(f"need --samples >= 1 and --trajectory >= 0, got {args.samples} and {args.trajectory}")
    try:
        written = write_plots(args.file, args.out, args.samples, animate=not args.no_animation, trajectory=args.trajectory)
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


def ritz(args) -> int:
    from datagen.ritz import GENERATOR_VERSION, generate_ritz
    from pdekit.files.dataset import DatasetFormatError, write_poisson

    system = _system(args.system) if args.system else None
    level = None if system else level_of(args, "poisson")
    if args.n < 1 or args.lanczos_steps < 2 or (system is None and (args.resolution or 0) < 8):
        raise UsageError("need --n >= 1, --lanczos-steps >= 2 and --resolution >= 8 (or --system FILE:INDEX)")
    if system is None and args.dim not in (2, 3):
        raise UsageError(f"--dim must be 2 or 3, got {args.dim}")
    check_seed(args.seed, 1)
    out = Path(args.out)
    check_out(out, args.overwrite)
    if system is None:
        vectors = 8 * args.resolution**args.dim * (args.n + args.lanczos_steps)
        check_resources(vectors // 2, 3 * vectors, out.resolve().parent,
                         f"--n {args.n} and --lanczos-steps {args.lanczos_steps} at --resolution {args.resolution}")
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


SPLIT_DEFAULT = "0.8,0.1,0.1"


def export(args) -> int:
    from datagen.export import export as write_export
    from pdekit.files.dataset import DatasetFormatError

    if args.samples < 1 or args.trajectory < 0:
        raise UsageError(f"need --samples >= 1 and --trajectory >= 0, got {args.samples} and {args.trajectory}")
    try:
        split = [float(part) for part in args.split.split(",")]
    except ValueError:
        raise UsageError(f"--split must look like 0.8,0.1,0.1 (train,valid,test), got {args.split!r}") from None
    if args.format != "the-well" and args.split != SPLIT_DEFAULT:
        raise UsageError("--split applies to --format the-well only")
    source = Path(args.file)
    if args.format == "the-well" and source.is_file():
        # every trajectory is rewritten (float32, like the input): room for about the input's size,
        # checked before writing (HDF5 meeting a full disk mid-write cannot close its file cleanly)
        target = Path(args.out) if args.out else source.with_name(f"{source.stem}-the-well")
        existing = next((p for p in [target, *target.parents] if p.exists()), Path("."))
        needed, free = source.stat().st_size, shutil.disk_usage(existing).free
        if needed > free:
            raise UsageError(f"exporting {source} needs about {human_size(needed)} of disk in {existing}; "
                             f"{human_size(free)} are free")
    try:
        written = write_export(args.file, args.format, args.out, args.samples, trajectory=args.trajectory,
                         overwrite=args.overwrite, split=split, seed=args.seed)
    except (FileNotFoundError, DatasetFormatError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(f"wrote {written[0]}" + (f" (+{len(written) - 1} more)" if len(written) > 1 else ""))
    return 0
