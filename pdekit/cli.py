"""The `pdekit` command.  Training (`pdekit fit/validate/test`) and `pdekit evaluate` arrive with
the training issue; today it reports the installation and solves a check problem."""
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pdekit", description="pdekit: neural PDE solver framework")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions and devices").set_defaults(run=_info)
    check = sub.add_parser("check", help="solve a small Poisson problem with a known answer")
    check.add_argument("--resolution", type=int, default=128)
    check.add_argument("--device", default=None)
    check.set_defaults(run=_check)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
