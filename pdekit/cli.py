"""The `pdekit` command.

    pdekit fit|validate|test|predict --config cfg.yaml [--key value ...]   (LightningCLI)
    pdekit evaluate --ckpt model.ckpt --data file.h5 [--out dir]
    pdekit info | pdekit check
"""
from __future__ import annotations

import argparse
import sys
import time


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
    from pdekit.krylov import pcg
    from pdekit.precond import AMG

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
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


def _fail(err) -> int:
    print(f"pdekit: error: {err}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("fit", "validate", "test", "predict"):
        from pdekit.data import DatasetFormatError
        from pdekit.errors import PdekitError
        from pdekit.fit import run

        named = (FileNotFoundError, DatasetFormatError, PdekitError)
        try:
            run(argv)
        except Exception as err:
            # jsonargparse and Lightning wrap errors raised while building the model or data:
            # report pdekit's own message (the cause), not the wrappers' traces
            cause = err
            while cause is not None and not isinstance(cause, named):
                cause = cause.__cause__ or cause.__context__
            if cause is None:
                raise
            return _fail(cause)
        return 0
    parser = argparse.ArgumentParser(prog="pdekit", description="pdekit: neural PDE solver framework")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions and devices").set_defaults(run=_info)
    check = sub.add_parser("check", help="solve a small Poisson problem with a known answer")
    check.add_argument("--resolution", type=int, default=128)
    check.add_argument("--device", default=None)
    check.set_defaults(run=_check)
    ev = sub.add_parser("evaluate", help="metrics.json and figures of a trained checkpoint on a dataset")
    ev.add_argument("--ckpt", required=True)
    ev.add_argument("--data", required=True, nargs="+", help="one or more dataset files")
    ev.add_argument("--out", default=None, help="folder (default: evaluation/ next to the checkpoint)")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(run=_evaluate)
    args = parser.parse_args(argv)
    return args.run(args)


def _evaluate(args) -> int:
    from pdekit.data import DatasetFormatError
    from pdekit.errors import PdekitError
    from pdekit.evaluate import main

    try:
        return main(args)
    except (FileNotFoundError, DatasetFormatError, PdekitError) as err:
        return _fail(err)


if __name__ == "__main__":
    sys.exit(main())
