"""A problem of your own for pdekit's analytic-problem solvers (GP-HM, FK-PINN) and ``datagen
feynman-kac``: a :class:`pdekit.problems.Problem` in any importable module, named ``module:object``.

    datagen feynman-kac --problem my_problems:WAVY_SQUARE --n 200 --paths 1000 --out labels.h5
    PDEKIT_ALLOW=my_problems:WAVY_SQUARE pdekit fit --config my_gp.yaml   # data.init_args.problem: my_problems:WAVY_SQUARE

(run with docs/examples on ``PYTHONPATH``, or put the module in your own package).
"""
import math

import torch

from pdekit.problems import Problem

# -Δu = f on the unit square with u = sin(πx) sin(3πy) (f and the boundary values follow from u)
WAVY_SQUARE = Problem(
    name="wavy-square", dim=2, bounds=((0.0, 1.0), (0.0, 1.0)),
    exact=lambda x: torch.sin(math.pi * x[:, 0]) * torch.sin(3 * math.pi * x[:, 1]),
    description="-Δu = f, u = sin(πx) sin(3πy) on [0, 1]²")

# -u'' = f on [0, 1] with u = sin(30x) + (x − 1/2)²: a high frequency on a low-order polynomial, the
# kind GP-HM's additive second process is for:
#     python -m experiments.studies.gp_hm_study --problems my_problems:TWO_SCALE --kernels stm,stm+matern
TWO_SCALE = Problem(
    name="two-scale", dim=1, bounds=((0.0, 1.0),),
    exact=lambda x: torch.sin(30 * x[:, 0]) + (x[:, 0] - 0.5) ** 2,
    description="-u'' = f, u = sin(30x) + (x - 1/2)² on [0, 1]")
