"""The `datagen` command.

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

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path


SOLVER_CHOICES = ("auto", "ssor-pcg", "cg", "amg-pcg")  # datagen.poisson.solve_sample's solvers (here: --help imports no solver)


class UsageError(Exception):
    """Bad arguments: reported as one line, exit status 2."""


LARGEST_SEED = 2**63 - 1  # seeds are stored as int64; sample k uses seed + k


def _check_seed(seed: int, n: int) -> None:
    """One seed rule for every generator: sample k uses ``seed + k``, a non-negative int64."""
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    if seed + n - 1 > LARGEST_SEED:
        raise UsageError(f"--seed {seed} with --n {n}: the last sample's seed {seed + n - 1} exceeds {LARGEST_SEED}")


def _cap_workers(workers: int) -> int:
    """More processes than CPUs only slow each other down: cap with a notice."""
    from pdekit.resources import available_cpus

    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    cpus = available_cpus()
    if workers > cpus:
        print(f"datagen: note: --workers {workers} capped to the {cpus} CPUs available", file=sys.stderr)
        return cpus
    return workers


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} PiB"


def _check_resources(data_bytes: int, peak_bytes: int, folder: Path, what: str) -> None:
    """Refuse up front a run whose data cannot fit in memory or on disk (before any work)."""
    memory = _available_memory()
    if peak_bytes > memory:
        raise UsageError(f"{what} needs about {peak_bytes} bytes ({_size(peak_bytes)}) of memory; "
                         f"{_size(memory)} are available (lower --n or --resolution, or split the run with --shard)")
    free = shutil.disk_usage(folder).free
    if 2 * data_bytes > free:  # the finished parts and the file exist together for a moment
        raise UsageError(f"{what} needs about {2 * data_bytes} bytes ({_size(2 * data_bytes)}) of disk in {folder}; "
                         f"{_size(free)} are free")


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text}: need 0 <= i < n")
    return i, n


def _check_sampler_accuracy(problem, args) -> None:
    """Refuse sampler settings whose bias or work is out of proportion to the problem: walk-on-spheres
    is biased by O(epsilon / L), Euler–Maruyama by O(sqrt(dt / T)) and needs ~T / dt steps per path,
    with L the domain's size and T ~ L^2 / (8 a d) the walkers' typical exit time."""
    from datagen.feynman_kac import MAX_STEPS

    size = max(hi - lo for lo, hi in problem.bounds)
    exit_time = size**2 / (8 * problem.diffusion * problem.dim)
    if args.sampler == "walk-on-spheres" and args.epsilon > 0.01 * size:
        raise UsageError(f"--epsilon {args.epsilon:g} is too large for {problem.name} (size {size:.3g}): the labels "
                         f"are biased by O(epsilon / size); use at most {0.01 * size:.3g}")
    if args.sampler == "euler-maruyama":
        if args.dt > 0.01 * exit_time:
            raise UsageError(f"--dt {args.dt:g} is too large for {problem.name} (exit time ~{exit_time:.3g}): the "
                             f"labels are biased by O(sqrt(dt / T)); use at most {0.01 * exit_time:.3g}")
        if exit_time / args.dt > MAX_STEPS:
            raise UsageError(f"--dt {args.dt:g} is too small for {problem.name}: walkers need ~{exit_time / args.dt:.2g} "
                             f"steps to exit (the sampler stops at {MAX_STEPS:.0e}); use at least "
                             f"{exit_time / MAX_STEPS:.2g}")


def _check_out(out: Path, overwrite: bool) -> None:
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
    from datagen.generators import config_for, estimate_bytes

    generator = _generator(args)
    if (args.level is None) == (args.spec is None):
        raise UsageError("give exactly one of --level NAME or --spec level.yaml")
    level = _level(args, generator)
    resolution = args.resolution if args.resolution is not None else getattr(level, "resolution", None)
    if resolution is None:
        raise UsageError("--resolution is required")
    checks = [(args.n >= 1, f"--n must be >= 1, got {args.n}"),
              (resolution >= 8, f"--resolution must be >= 8, got {resolution}")]
    extra = {}
    if generator == "poisson":
        checks.append((args.dim in (2, 3), f"--dim must be 2 or 3, got {args.dim}"))
        extra["dim"] = args.dim
        extra.update(_poisson_solver(args))
    else:
        _check_device(args.device)
        extra["device"] = args.device
    if generator in ("navier_stokes_periodic", "burgers"):
        checks.append((args.batch >= 1, f"--batch must be >= 1, got {args.batch}"))
        checks.append((getattr(args, "omega", None) is None,
                       "--omega sets SSOR's relaxation: it needs --family obstacles --pressure-precond ssor"))
        extra["batch"] = args.batch
    if generator == "navier_stokes_obstacles":
        checks.append((0 < args.pressure_tol < 1, f"--pressure-tol must be in (0, 1), got {args.pressure_tol}"))
        extra.update(pressure_precond=_pressure_precond(args.pressure_precond), pressure_tol=args.pressure_tol)
        if extra["pressure_precond"] == "ssor":
            extra["pressure_omega"] = _omega(args.omega)
        elif args.omega is not None:
            raise UsageError("--omega sets SSOR's relaxation: it needs --pressure-precond ssor")
        if args.pressure_systems:
            if getattr(level, "walls", "staircase") != "staircase":
                from datagen.ns_channel_run import WHY_STAIRCASE_PRESSURE_SYSTEMS

                raise UsageError(f"--pressure-systems needs staircase walls: {WHY_STAIRCASE_PRESSURE_SYSTEMS}")
            _check_out(Path(args.pressure_systems), args.overwrite)
            extra["pressure_systems"] = str(Path(args.pressure_systems))
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    _check_seed(args.seed, args.n)
    shard = _shard(args.shard)
    out = Path(args.out)
    _check_out(out, args.overwrite)
    config = config_for(generator, level, args.n, resolution, args.seed, **extra)
    data_bytes, peak_bytes = estimate_bytes(config, -(-args.n // shard[1]))
    _check_resources(data_bytes, peak_bytes, out.resolve().parent,
                     f"--n {args.n} at --resolution {resolution}" + (f" --dim {args.dim}" if generator == "poisson" else ""))
    spent = _run_generator(args, config, out, shard)
    side = f" and {extra['pressure_systems']}" if extra.get("pressure_systems") else ""
    print(f"wrote {out}{side} ({spent['samples']} samples computed in {spent['wall']:.1f} s)")
    _warn_quality(out)
    return 0


def _run_generator(args, config: dict, out: Path, shard) -> dict:
    """The runner (workers, shards, resume, atomic output) with its failures as one-line errors."""
    from datagen.burgers import BlowUpError
    from datagen.generators import GenerationError
    from datagen.runner import RunInUseError, StaleRunError, run

    workers = _cap_workers(args.workers)
    try:
        return run(config, out, workers=workers, shard=shard, resume=args.resume, overwrite=args.overwrite,
                   progress=not args.quiet)
    except StaleRunError as err:
        command = _command_line(args.argv)
        raise UsageError(f"{err.parts} holds an interrupted run: `{command} --resume` continues it, "
                         f"`{command} --overwrite` starts over") from None
    except (RunInUseError, ValueError, BlowUpError, GenerationError) as err:
        raise UsageError(str(err)) from None


def _feynman_kac(args) -> int:
    """``datagen feynman-kac``: Monte Carlo labels at random points of an analytic problem."""
    from datagen.feynman_kac import SAMPLERS
    from datagen.generators import estimate_bytes
    from pdekit.errors import ConfigError
    from pdekit.problems import get

    try:
        problem = get(args.problem)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    checks = [(args.n >= 1, f"--n must be >= 1, got {args.n}"),
              (args.paths >= 2, f"--paths must be >= 2, got {args.paths}"),
              (args.batch >= 1, f"--batch must be >= 1, got {args.batch}"),
              (0 < args.epsilon < 1, f"--epsilon must be in (0, 1), got {args.epsilon}"),
              (0 < args.dt < 1, f"--dt must be in (0, 1), got {args.dt}"),
              (args.sampler in SAMPLERS, f"--sampler must be one of {', '.join(SAMPLERS)}, got {args.sampler!r}"),
              (not (args.sampler == "walk-on-spheres" and problem.drift is not None),
               f"walk-on-spheres cannot follow the drift of {problem.name}; use --sampler euler-maruyama"),
              (not (args.sampler == "walk-on-spheres" and problem.dim < 2),
               "walk-on-spheres needs dimension >= 2; use --sampler euler-maruyama"),
              (problem.allen_cahn == 0, f"{problem.name} is nonlinear (Allen–Cahn): no Feynman–Kac formula")]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    _check_sampler_accuracy(problem, args)
    _check_device(args.device)
    _check_seed(args.seed, args.n)
    shard = _shard(args.shard)
    out = Path(args.out)
    _check_out(out, args.overwrite)
    config = {"generator": "feynman_kac", "pde": "feynman_kac", "problem": problem.name, "level": problem.name,
              "equation": problem.description, "dim": problem.dim, "sampler": args.sampler, "paths": args.paths,
              "epsilon": args.epsilon, "dt": args.dt, "n": args.n, "seed": args.seed, "batch": args.batch,
              "device": args.device}
    data_bytes, peak_bytes = estimate_bytes(config, -(-args.n // shard[1]))
    _check_resources(data_bytes, peak_bytes, out.resolve().parent, f"--paths {args.paths} with --batch {args.batch}")
    spent = _run_generator(args, config, out, shard)
    print(f"wrote {out} ({spent['samples']} labels computed in {spent['wall']:.1f} s)")
    return 0


def _warn_quality(out: Path) -> None:
    """Data-quality flags the generator recorded per sample (``under_resolved``): say so."""
    import h5py
    import numpy as np

    with h5py.File(out, "r") as h5:
        if "under_resolved" not in h5:
            return
        flags = np.asarray(h5["under_resolved"][()], bool)
        if flags.any():
            tail = float(np.max(h5["spectral_tail"][()]))
            print(f"datagen: warning: {int(flags.sum())} of {len(flags)} trajectories are under-resolved (energy "
                  f"fraction {tail:.1e} in the top third of wavenumbers: Gibbs oscillations at the fronts); raise "
                  "--resolution (the level's default resolves them). Flag: the 'under_resolved' field",
                  file=sys.stderr)


def _poisson_solver(args) -> dict:
    """``--solver ssor-pcg --omega auto|VALUE`` as config entries (none for the default solver, so
    default runs keep their configuration)."""
    if args.solver != "ssor-pcg":
        if args.omega is not None:
            raise UsageError("--omega sets SSOR's relaxation: it needs --solver ssor-pcg")
        return {} if args.solver == "auto" else {"solver": args.solver}
    omega = _omega(args.omega)
    if omega == "auto" and args.workers > 1:
        raise UsageError("--omega auto learns from one solve to the next: run it with --workers 1 "
                         "(or one shard per process)")
    return {"solver": args.solver, "omega": omega}


def _omega(text):
    """``--omega``: ``auto`` (the default) or a relaxation in (0, 2)."""
    if text is None or text == "auto":
        return "auto"
    from pdekit.errors import ConfigError
    from pdekit.precond import check_omega

    try:
        return check_omega(float(text))
    except (ValueError, ConfigError):
        raise UsageError(f"--omega must be auto or a number in (0, 2), got {text!r}") from None


def _command_line(argv) -> str:
    """The command as the user typed it, without --resume/--overwrite (the message adds one)."""
    kept = [a for a in argv if a not in ("--resume", "--overwrite")]
    return " ".join(shlex.quote(a) for a in ["datagen", *kept])


def _pressure_precond(value: str) -> str:
    from datagen.ns_channel import PRECONDITIONERS

    if value in PRECONDITIONERS:
        return value
    if not Path(value).is_file():
        raise UsageError(f"--pressure-precond must be one of {', '.join(PRECONDITIONERS)} or a checkpoint file, "
                         f"got {value!r}")
    from pdekit.learning.checkpoints import load_task
    from pdekit.errors import PdekitError

    try:  # refused here, before any work, if it is not a loadable pdekit checkpoint
        task, _ = load_task(value)
    except PdekitError as err:
        raise UsageError(f"--pressure-precond: {err}") from None
    if not hasattr(task, "preconditioner_module"):
        raise UsageError(f"--pressure-precond: {value} holds a model that cannot act as a preconditioner")
    if not getattr(task, "trained_on_residuals", False):
        # a solution predictor (NPSolver, FNO, LSM, U-Net) meets rough Krylov residuals it never saw:
        # every pressure solve then runs to its iteration limit (measured: minutes on an 8-cell channel)
        raise UsageError(f"--pressure-precond: {value} holds a {type(task).__name__} trained to predict solutions, "
                         "which stalls as a preconditioner; use a DCDM or neural multigrid checkpoint")
    return str(Path(value).resolve())


def _check_device(device: str) -> None:
    from pdekit.resources import check_device

    try:
        check_device(device)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _levels(args) -> int:
    import numpy as np

    from datagen.poisson import LEVELS, sample_problem
    from pdekit import DiffusionOperator
    from pdekit.krylov import cg, pcg
    from pdekit.precond import AMG

    if not 8 <= args.resolution <= 256:
        raise UsageError(f"--resolution must be in 8..256 (iterations are measured now), got {args.resolution}")
    print(f"poisson levels (typical iterations to 1e-8, measured now at {args.resolution}^2 over 2 seeds)")
    print(f"{'level':<9} {'CG':>7} {'AMG-PCG':>8}  varies")
    from tqdm import tqdm

    bar = tqdm(total=2 * len(LEVELS), desc="measuring", unit="solve", leave=False, disable=None)  # a terminal only
    for name, level in LEVELS.items():
        its = []
        for seed in range(2):
            grid, a, mask, bc, f = sample_problem(name, args.resolution, 2, seed)
            op = DiffusionOperator(grid, a, mask, bc)
            b = op.rhs(f)
            its.append((int(cg(op, b, tol=1e-8, maxiter=100000).iterations),
                        int(pcg(op, b, AMG(op), tol=1e-8).iterations)))
            bar.update(1)
        mean = np.mean(its, axis=0)
        bar.write(f"{name:<9} {mean[0]:>7.0f} {mean[1]:>8.1f}  {level.description}", file=sys.stdout)
        sys.stdout.flush()  # each row as soon as it is measured, also into a pipe
    bar.close()
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
    from pdekit.files.dataset import DatasetFormatError

    out = Path(args.out)
    _check_out(out, args.overwrite)
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


def _cost(args) -> int:
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


def _plot(args) -> int:
    from datagen.plot import plot
    from pdekit.files.dataset import DatasetFormatError

    if args.samples < 1 or args.trajectory < 0:
        raise UsageError(f"need --samples >= 1 and --trajectory >= 0, got {args.samples} and {args.trajectory}")
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
    from pdekit.files.dataset import DatasetFormatError, write_poisson

    system = _system(args.system) if args.system else None
    level = None if system else _level(args)
    if args.n < 1 or args.lanczos_steps < 2 or (system is None and (args.resolution or 0) < 8):
        raise UsageError("need --n >= 1, --lanczos-steps >= 2 and --resolution >= 8 (or --system FILE:INDEX)")
    if system is None and args.dim not in (2, 3):
        raise UsageError(f"--dim must be 2 or 3, got {args.dim}")
    _check_seed(args.seed, 1)
    out = Path(args.out)
    _check_out(out, args.overwrite)
    if system is None:
        vectors = 8 * args.resolution**args.dim * (args.n + args.lanczos_steps)
        _check_resources(vectors // 2, 3 * vectors, out.resolve().parent,
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


def _export(args) -> int:
    from datagen.export import export
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
            raise UsageError(f"exporting {source} needs about {_size(needed)} of disk in {existing}; "
                             f"{_size(free)} are free")
    try:
        written = export(args.file, args.format, args.out, args.samples, trajectory=args.trajectory,
                         overwrite=args.overwrite, split=split, seed=args.seed)
    except (FileNotFoundError, DatasetFormatError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(f"wrote {written[0]}" + (f" (+{len(written) - 1} more)" if len(written) > 1 else ""))
    return 0


def _common(p, resolution_help: str, batched: bool) -> None:
    """Arguments every generating command shares."""
    p.add_argument("--level", help="a named level (see `datagen levels`)")
    p.add_argument("--spec", help="YAML file with explicit level axes (keys as in the level; optional base: NAME)")
    p.add_argument("--n", type=int, required=True, help="number of samples")
    p.add_argument("--resolution", type=int, default=None, help=resolution_help)
    p.add_argument("--seed", type=int, default=0, help="sample k uses seed + k (seed >= 0; default 0)")
    p.add_argument("--out", required=True, help="the HDF5 file to write (atomically, when every sample is done)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes (one sample or batch per job; capped at the CPU count; default 1)")
    p.add_argument("--shard", default="0/1",
                   help="i/n: generate the samples k with (k // batch) %% n == i (batch: --batch)" if batched else
                   "i/n: generate the samples k with k %% n == i; join the n files with `datagen merge`")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run (kept in <out>.parts/)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out (and discard an interrupted run's parts)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_generate)


def _time_series(p, batch: int) -> None:
    p.add_argument("--device", default="cpu", help="torch device of the solver (cpu, cuda, cuda:1)")
    p.add_argument("--batch", type=int, default=batch,
                   help=f"trajectories integrated together (batched FFTs; the channel takes one at a time; "
                        f"default {batch})")


def build_parser() -> argparse.ArgumentParser:
    from pdekit.learning.cli import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="datagen", description="Generate PDE datasets with classical solvers.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("poisson", help="Poisson problems -div(a grad u) = f at a difficulty level")
    _common(p, "nodes per axis (required)", batched=False)
    p.add_argument("--dim", type=int, default=2, help="2 or 3 (default 2)")
    p.add_argument("--solver", choices=SOLVER_CHOICES, default="auto",
                   help="auto: sparse LU where fastest, else AMG-PCG (default); ssor-pcg: CG preconditioned by SSOR "
                        "with relaxation --omega; cg: plain CG; amg-pcg: AMG-preconditioned CG (the iterative solvers "
                        "make the recorded solve_seconds grow with difficulty)")
    p.add_argument("--omega", default=None,
                   help="ssor-pcg: the relaxation in (0, 2), or auto (default): an online bandit learns it across "
                        "the run from each solve's iterations (recorded per sample as `omega`)")
    ns = sub.add_parser("navier-stokes", help="2-D Navier-Stokes trajectories (periodic box or channel with obstacles)")
    ns.add_argument("--family", choices=("periodic", "obstacles"), required=True,
                    help="periodic: vorticity in a periodic box; obstacles: channel flow past obstacles")
    _common(ns, "grid points per axis (periodic) or cells across the channel (obstacles); default: the level's",
            batched=True)
    _time_series(ns, batch=8)
    ns.add_argument("--pressure-precond", default="amg",
                    help="obstacles: pressure preconditioner amg|jacobi|ilu|ssor|none or a trained pdekit checkpoint")
    ns.add_argument("--omega", default=None,
                    help="obstacles with --pressure-precond ssor: the relaxation in (0, 2), or auto (default): an "
                         "online bandit learns it from each pressure solve's iterations (recorded per snapshot as "
                         "`pressure_omega`)")
    ns.add_argument("--pressure-tol", type=float, default=1e-6,
                    help="obstacles: relative residual of each pressure solve (= divergence after the step)")
    ns.add_argument("--pressure-systems", default=None,
                    help="obstacles: also save every snapshot's pressure system as a Poisson-format dataset here")
    bg = sub.add_parser("burgers", help="1-D viscous Burgers trajectories at a difficulty level")
    _common(bg, "grid points (default: the level's)", batched=True)
    _time_series(bg, batch=32)
    fk = sub.add_parser("feynman-kac", help="Monte Carlo Feynman–Kac labels u(x) ± standard error at random "
                                            "points of an analytic problem (for FK-PINNs)")
    fk.add_argument("--problem", required=True, help="a problem name (`pdekit problems` lists them)")
    fk.add_argument("--n", type=int, required=True, help="number of labelled points (drawn uniformly in the domain)")
    fk.add_argument("--paths", type=int, default=1000, help="random walks per point (default 1000)")
    fk.add_argument("--sampler", default="walk-on-spheres",
                    help="walk-on-spheres (default; no time-step bias, no drift) or euler-maruyama (any drift; "
                         "biased by O(sqrt(dt)) at the exit)")
    fk.add_argument("--epsilon", type=float, default=1e-4, help="walk-on-spheres: stop within this of the boundary")
    fk.add_argument("--dt", type=float, default=1e-4, help="euler-maruyama: the time step")
    fk.add_argument("--seed", type=int, default=0, help="point k uses seed + k (seed >= 0; default 0)")
    fk.add_argument("--out", required=True, help="the HDF5 file to write (atomically, when every label is done)")
    fk.add_argument("--device", default="cpu", help="torch device of the walks (cpu, cuda)")
    fk.add_argument("--batch", type=int, default=16, help="points whose walks run together (default 16)")
    fk.add_argument("--workers", type=int, default=1, help="processes (one batch per job; default 1)")
    fk.add_argument("--shard", default="0/1", help="i/n: the points k with (k // batch) %% n == i")
    fk.add_argument("--resume", action="store_true", help="finish an interrupted run (kept in <out>.parts/)")
    fk.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    fk.add_argument("--quiet", action="store_true", help="no progress bar")
    fk.set_defaults(run=_feynman_kac)
    lv = sub.add_parser("levels", help="list difficulty levels with measured solver iterations")
    lv.add_argument("--resolution", type=int, default=32,
                    help="Poisson grid on which iterations are measured (default 32)")
    lv.set_defaults(run=_levels)
    m = sub.add_parser("merge", help="join shard files into one dataset")
    m.add_argument("shards", nargs="+", help="the files of every --shard i/n of one run")
    m.add_argument("--out", required=True, help="the merged HDF5 file")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    m.set_defaults(run=_merge)
    co = sub.add_parser("cost", help="generation cost per level of datasets (from each sample's recorded solve time)")
    co.add_argument("files", nargs="+", help="pdekit datasets")
    co.set_defaults(run=_cost)
    pl = sub.add_parser("plot", help="PNG of a few samples (Poisson: a, mask, f, u; time series: snapshots) "
                                      "and a GIF/MP4 of one trajectory")
    pl.add_argument("file", help="a pdekit dataset")
    pl.add_argument("--out", default=None, help="PNG path (default: next to the file)")
    pl.add_argument("--samples", type=int, default=4, help="samples shown (default 4)")
    pl.add_argument("--trajectory", type=int, default=0, help="time series: the sample to animate")
    pl.add_argument("--no-animation", action="store_true", help="time series: PNG only")
    pl.set_defaults(run=_plot)
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
    rz.set_defaults(run=_ritz)
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
    ex.set_defaults(run=_export)
    return parser


def _terminate(signum, frame):
    from datagen.runner import Interrupted

    raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


def main(argv=None) -> int:
    from pdekit.errors import os_error_message, quiet_hdf5_destructors

    quiet_hdf5_destructors()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser().parse_args(argv)
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
