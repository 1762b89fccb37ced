"""The ``pdekit`` command.

Usage::

    pdekit fit|validate|test|predict --config cfg.yaml [--key value ...]   (LightningCLI)
    pdekit evaluate --ckpt model.ckpt --data file.h5 [--out dir]   (no --data for GP-HM / FK-PINN)
    pdekit info | pdekit check | pdekit problems

Every error is one line on stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _info(_args) -> int:
    import numpy
    import pyamg
    import scipy
    import torch

    import pdekit

    print(f"pdekit {pdekit.__version__}")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}, "
          f"scipy {scipy.__version__}, pyamg {pyamg.__version__}")
    cuda = torch.cuda.is_available()
    print(f"CUDA: {'yes, ' + torch.cuda.get_device_name(0) if cuda else 'no'}; CPU threads: {torch.get_num_threads()}")
    return 0


def _check(args) -> int:
    """Solve a 2D Poisson problem with an exact discrete solution and report the error."""
    import numpy as np
    import torch

    from pdekit import DiffusionOperator, Grid
    from pdekit.errors import ConfigError
    from pdekit.krylov import pcg
    from pdekit.precond import AMG

    from pdekit.resources import limit_threads, thread_variable

    limit_threads()
    if args.resolution < 3:
        raise ConfigError(f"--resolution must be >= 3 (nodes per axis, boundary included), got {args.resolution}")
    if args.resolution > 4096:
        raise ConfigError(f"--resolution must be <= 4096 for this check, got {args.resolution}")
    device = _check_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    n = args.resolution
    op = DiffusionOperator(Grid.box((n, n)))
    x, y = op.grid.coordinates()
    u_exact = np.sin(np.pi * x) * np.sin(2 * np.pi * y)
    b = op(torch.as_tensor(u_exact)).to(device)  # discrete manufactured RHS: exact answer known
    t0 = time.perf_counter()
    res = pcg(op, b, AMG(op), tol=1e-10)
    seconds = time.perf_counter() - t0
    err = float((res.x.cpu() - torch.as_tensor(u_exact)).abs().max())
    print(f"{n}x{n} Poisson on {device}: AMG-PCG {int(res.iterations.item())} iterations, "
          f"{seconds:.3f} s, max error vs exact discrete solution {err:.2e}")
    return 0 if err < 1e-7 else 1


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` for usage)\n")


def _fail(err) -> int:
    print(f"pdekit: error: {err}", file=sys.stderr)
    return 2


LIGHTNING_COMMANDS = {
    "fit": "train a model from a YAML config (LightningCLI; any key overridable: --model.init_args.lr 3e-4; "
           "--ckpt_path last resumes, --overwrite starts afresh over an earlier run's checkpoints)",
    "validate": "validation metrics of a config's model (--ckpt_path for trained weights)",
    "test": "test-split metrics of a config's model (--ckpt_path for trained weights)",
    "predict": "predictions on the test split, written to an HDF5 file (--predictions PATH)",
}


def _lightning(argv) -> int:
    """``pdekit fit|validate|test|predict``: LightningCLI, with every error as one line."""
    import argparse as _argparse


    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from pdekit.files.dataset import DatasetFormatError
    from pdekit.errors import PdekitError, os_error_message
    from pdekit.learning.fit import TrainingInterrupted, parser_error_line, run

    named = (FileNotFoundError, DatasetFormatError, PdekitError, MisconfigurationException)
    try:
        run(argv)
    except TrainingInterrupted as stop:  # a signal: not finished, and the exit status says so
        print(f"pdekit: {stop}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # Ctrl-C before or after training
        print(f"pdekit: {argv[0]} interrupted (SIGINT)", file=sys.stderr)
        return 130
    except _argparse.ArgumentError as err:
        return _fail(f"{parser_error_line(str(err))} (`pdekit {argv[0]} --help` lists the options)")
    except SystemExit as exit_:  # --help, --print_config
        return exit_.code if isinstance(exit_.code, int) else 0
    except Exception as err:
        # jsonargparse and Lightning wrap errors raised while building the model or data:
        # report pdekit's own message (the cause), not the wrappers' traces
        cause = err
        while cause is not None and not isinstance(cause, named):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            if isinstance(err, OSError):
                return _fail(os_error_message(err))
            raise
        return _fail(cause)
    return 0


def _check_device(device: str) -> str:
    """The device, or one line saying why it cannot be used (e.g. CUDA asked for, none present)."""
    from pdekit.errors import ConfigError
    from pdekit.resources import check_device

    try:
        return check_device(device)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _problems(_args) -> int:
    """The analytic problems (pdekit.problems) a GP-HM or FK-PINN config can name."""
    from pdekit.problems import PROBLEMS

    width = max(len(name) for name in PROBLEMS)
    print(f"{'problem':<{width}}  dim  {'domain':<34} equation and exact solution")
    for name, problem in PROBLEMS.items():
        print(f"{name:<{width}}  {problem.dim:>3}  {problem.domain!r:<34} {problem.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="pdekit", description="pdekit: neural PDE solver framework")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in LIGHTNING_COMMANDS.items():  # dispatched to LightningCLI before argparse sees them
        sub.add_parser(name, help=text, add_help=False)
    ev = sub.add_parser("evaluate", help="metrics.json and figures of a trained checkpoint on datasets")
    ev.add_argument("--ckpt", required=True, help="a checkpoint written by pdekit fit")
    ev.add_argument("--data", nargs="*", default=[],
                    help="one or more dataset files (none for GP-HM / FK-PINN checkpoints: their problem's exact "
                         "solution is known)")
    ev.add_argument("--out", default=None, help="folder (default: evaluation/ next to the checkpoint)")
    ev.add_argument("--batch-size", type=int, default=16, help="samples per forward pass (default 16)")
    ev.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1; default cpu)")
    ev.add_argument("--rollout", action="store_true",
                    help="time series: the rollout-stability suite (correlation, time until it drops, spectra, "
                         "invariants, shocks, blow-up) with figures")
    ev.add_argument("--steps", type=int, default=None,
                    help="with --rollout: roll out this many steps (beyond the stored horizon: blow-up only)")
    ev.set_defaults(run=_evaluate)
    check = sub.add_parser("check", help="solve a small Poisson problem with a known answer")
    check.add_argument("--resolution", type=int, default=128, help="nodes per axis, >= 3 (default 128)")
    check.add_argument("--device", default=None, help="torch device (default: cuda if present, else cpu)")
    check.set_defaults(run=_check)
    sub.add_parser("info", help="versions and devices").set_defaults(run=_info)
    sub.add_parser("problems", help="the analytic problems (GP-HM, FK-PINN, datagen feynman-kac) by name"
                   ).set_defaults(run=_problems)
    return parser


def main(argv=None) -> int:
    from pdekit.errors import ConfigError, quiet_hdf5_destructors
    from pdekit.learning.quiet import quiet_third_party
    from pdekit.resources import limit_threads, thread_variable

    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    quiet_third_party()
    quiet_hdf5_destructors()
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from pdekit.learning.configs import check_config_files

        try:
            thread_variable()  # the environment first: it concerns every command
            check_config_files(argv)  # before torch and Lightning load: a missing or broken config answers at once
            limit_threads()
        except ConfigError as err:  # a bad config file, or PDEKIT_THREADS / OMP_NUM_THREADS not a positive integer
            return _fail(err)
        return _lightning(argv)
    args = build_parser().parse_args(argv)
    from pdekit.errors import DatasetFormatError, PdekitError, os_error_message

    try:
        if args.command in ("evaluate", "check"):
            thread_variable()  # evaluate and check set torch's threads once their arguments are checked
        return args.run(args)
    except (FileNotFoundError, DatasetFormatError, PdekitError) as err:
        return _fail(err)
    except OSError as err:
        return _fail(os_error_message(err))


def _evaluate(args) -> int:
    from pdekit.errors import ConfigError

    if not Path(args.ckpt).exists():  # before torch loads: a wrong path answers at once
        raise FileNotFoundError(f"no such checkpoint: {args.ckpt}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.steps is not None and (args.steps < 1 or not args.rollout):
        raise ConfigError(f"--steps needs --rollout and a value >= 1, got {args.steps}")
    from pdekit.learning.evaluation.fields import main
    from pdekit.resources import limit_threads

    limit_threads()
    args.device = _check_device(args.device)
    return main(args)


if __name__ == "__main__":
    sys.exit(main())
