"""The `datagen` command.  The Poisson and Navier–Stokes generators land with their own issues;
until then the command only reports that."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="datagen", description="Generate PDE datasets with classical solvers (pdekit).",
        epilog="No generator is available yet: `datagen poisson` and `datagen navier-stokes` are planned.")
    parser.add_argument("--version", action="version", version="datagen (pdekit 0.1.0)")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
