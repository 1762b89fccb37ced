"""Manufactured solutions for -div(a grad u) = f, derived symbolically with sympy."""
from __future__ import annotations

import numpy as np
import sympy

X = sympy.symbols("x y z")


class Manufactured:
    """Exact ``u`` and ``a`` (sympy expressions in x, y[, z]) with f and fluxes derived exactly."""

    def __init__(self, u, a=1, ndim=2):
        self.ndim = ndim
        xs = X[:ndim]
        self.xs = xs
        u, a = sympy.sympify(u), sympy.sympify(a)
        f = -sum(sympy.diff(a * sympy.diff(u, x), x) for x in xs)
        self._u = sympy.lambdify(xs, u, "numpy")
        self._a = sympy.lambdify(xs, a, "numpy")
        self._f = sympy.lambdify(xs, f, "numpy")
        self._flux = [sympy.lambdify(xs, a * sympy.diff(u, x), "numpy") for x in xs]

    @staticmethod
    def _full(value, coords):
        return np.broadcast_to(np.asarray(value, dtype=float), coords[0].shape).copy()

    def u(self, *c):
        return self._full(self._u(*c), c)

    def a(self, *c):
        return self._full(self._a(*c), c)

    def f(self, *c):
        return self._full(self._f(*c), c)

    def outward_flux(self, axis: int, side: int):
        """``a du/dn`` on face (axis, side) as a function of coordinates (n outward)."""
        sign = 1.0 if side == 1 else -1.0
        return lambda *c: sign * self._full(self._flux[axis](*c), c)
