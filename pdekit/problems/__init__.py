"""Analytic problems: PDEs with known (or reference) solutions on simple domains, for the solvers
that learn a problem instead of a dataset (GP-HM, FK-PINN) and for the Feynman–Kac labels.

:mod:`~pdekit.problems.registry` holds the shipped problems and :func:`get` / :func:`register`;
:mod:`~pdekit.problems.domains` the domains; :mod:`~pdekit.problems.autodiff` the derivatives of a
network or a closed form; :mod:`~pdekit.problems.reference` finite-difference reference solves.
"""
from pdekit.problems.registry import PROBLEMS, Problem, get, register

__all__ = ["PROBLEMS", "Problem", "get", "register"]
