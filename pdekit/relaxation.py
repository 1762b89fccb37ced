"""Learning a solver parameter across a sequence of linear systems (Khodak, Chow, Balcan,
Talwalkar, "Learning to Relax", ICLR 2024): an online chooser picks the relaxation parameter ω of
SOR / SSOR-preconditioned CG for each system from a finite grid, sees only that solve's cost
(its iteration count), and its total cost approaches that of the best fixed ω in hindsight.

One small interface, usable around any solve::

    chooser = TsallisINF()                      # arms: 20 values of ω in [1, 1.95]
    for system in sequence:
        omega = chooser.choose()                # or chooser.choose(context) for the contextual one
        cost = pcg(A, b, SSOR(A, omega)).iterations
        chooser.update(omega, cost)
    chooser.save("omega.json")                  # and pdekit.relaxation.load("omega.json") to go on

:class:`TsallisINF` is the paper's bandit (Tsallis-INF, Zimmert & Seldin 2021, α = 1/2, with
the reference's cost scaling); :class:`ContextualTsallisINF` keeps one per cell of a grid over
instance features (the reference's ``TsallisINFCB`` bins one scalar; here any number of features,
each with its own bin edges).  Both are deterministic given their seed, and their whole state
(random generator included) round-trips through JSON.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from pdekit.files.atomic import atomic_path
from pdekit.errors import ConfigError

DEFAULT_ARMS = tuple(float(w) for w in np.round(np.linspace(1.0, 1.95, 20), 4))


def _check_arms(arms) -> tuple[float, ...]:
    arms = tuple(float(a) for a in arms)
    if not arms or any(not 0 < a < 2 for a in arms) or len(set(arms)) != len(arms):
        raise ConfigError(f"arms must be distinct values of omega in (0, 2), got {list(arms)}")
    return arms


class TsallisINF:
    """Tsallis-INF over a finite grid of parameter values ("arms"), cost = iterations.

    Round ``t`` (1-based): ``η = 2/√t``; probabilities ``p_i = 4 (η (L̂_i / s − x))⁻²`` with ``x``
    from 20 Newton steps so that ``Σ p = 1`` and ``s = mean(past costs) − 1`` (scale-free in the
    cost); draw an arm; after the solve, ``L̂_i += (cost − 1) / p_i`` for the drawn arm
    (importance-weighted, so ``L̂`` estimates each arm's total cost without bias)."""

    def __init__(self, arms=DEFAULT_ARMS, seed: int = 0):
        self.arms = _check_arms(arms)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.t = 0
        self.losses = np.zeros(len(self.arms))  # importance-weighted cumulative (cost - 1)
        self.cost_sum = 0.0
        self._pending: tuple[int, float] | None = None  # (arm, probability) of the last choice

    def probabilities(self) -> np.ndarray:
        t = self.t + 1
        eta = 2.0 / math.sqrt(t)
        scale = max(self.cost_sum / self.t - 1.0, 1.0) if self.t else 1.0
        loss = self.losses / scale
        x = loss.min() - 2.0 / eta  # the smallest gap gives p = 1: the sum starts >= 1
        for _ in range(20):
            w = 4.0 / (eta * (loss - x)) ** 2
            x -= (w.sum() - 1.0) / (eta * (w ** 1.5).sum())
        w = 4.0 / (eta * (loss - x)) ** 2
        return w / w.sum()

    def choose(self) -> float:
        p = self.probabilities()
        arm = int(self.rng.choice(len(self.arms), p=p))
        self._pending = (arm, float(p[arm]))
        return self.arms[arm]

    def update(self, omega: float, cost: float) -> None:
        """Report the cost (iterations, >= 1) of the solve that used ``omega`` (the last choice)."""
        if self._pending is None or self.arms[self._pending[0]] != float(omega):
            raise ConfigError(f"update({omega}) does not follow choose(): report the cost of the omega just chosen")
        if not (isinstance(cost, (int, float, np.integer, np.floating)) and math.isfinite(cost) and cost >= 0):
            raise ConfigError(f"cost must be a finite number >= 0 (iterations), got {cost!r}")
        arm, prob = self._pending
        self.losses[arm] += (float(cost) - 1.0) / prob
        self.cost_sum += float(cost)
        self.t += 1
        self._pending = None

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"kind": type(self).__name__, "arms": list(self.arms), "seed": self.seed, "t": self.t,
                "losses": self.losses.tolist(), "cost_sum": self.cost_sum,
                "rng": self.rng.bit_generator.state, "pending": self._pending}

    def load_state_dict(self, state: dict) -> "TsallisINF":
        self.arms = _check_arms(state["arms"])
        self.seed, self.t, self.cost_sum = int(state["seed"]), int(state["t"]), float(state["cost_sum"])
        self.losses = np.asarray(state["losses"], float)
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self._pending = tuple(state["pending"]) if state.get("pending") else None
        return self

    def save(self, path) -> Path:
        """Write the whole state as JSON, atomically (:func:`load` reads it back)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.state_dict()))
        return path


class ContextualTsallisINF:
    """One :class:`TsallisINF` per cell of a grid over instance features (e.g. log10 of the
    coefficient contrast, the fraction of Dirichlet boundary): ``edges[k]`` are the bin edges of
    feature ``k``; ``choose(context)`` / ``update(omega, cost, context)`` with one value per
    feature.  A cell's learner starts when its first instance arrives (seed + cell number)."""

    def __init__(self, edges, arms=DEFAULT_ARMS, seed: int = 0):
        self.edges = [sorted(float(e) for e in feature) for feature in edges]
        if not self.edges:
            raise ConfigError("a contextual chooser needs bin edges for at least one feature")
        self.arms, self.seed = _check_arms(arms), int(seed)
        self.cells: dict[str, TsallisINF] = {}

    def cell(self, context) -> str:
        values = np.atleast_1d(np.asarray(context, float))
        if values.shape != (len(self.edges),) or not np.isfinite(values).all():
            raise ConfigError(f"context must be {len(self.edges)} finite number(s), got {context!r}")
        return ",".join(str(int(np.searchsorted(e, v, side="right"))) for e, v in zip(self.edges, values))

    def _learner(self, context) -> TsallisINF:
        key = self.cell(context)
        if key not in self.cells:
            self.cells[key] = TsallisINF(self.arms, seed=self.seed + 1 + len(self.cells))
        return self.cells[key]

    def choose(self, context) -> float:
        return self._learner(context).choose()

    def update(self, omega: float, cost: float, context) -> None:
        self._learner(context).update(omega, cost)

    def state_dict(self) -> dict:
        return {"kind": type(self).__name__, "edges": self.edges, "arms": list(self.arms), "seed": self.seed,
                "cells": {k: v.state_dict() for k, v in self.cells.items()}}

    def load_state_dict(self, state: dict) -> "ContextualTsallisINF":
        self.edges, self.arms, self.seed = state["edges"], _check_arms(state["arms"]), int(state["seed"])
        self.cells = {k: from_state_dict(v) for k, v in state["cells"].items()}
        return self

    save = TsallisINF.save


def from_state_dict(state: dict):
    """A chooser (either kind) from its ``state_dict()``."""
    kind = {c.__name__: c for c in (TsallisINF, ContextualTsallisINF)}.get(state.get("kind"))
    if kind is None:
        raise ConfigError("not the state of a pdekit parameter chooser")
    return kind.__new__(kind).load_state_dict(state)


def load(path):
    """A chooser saved with ``save(path)``, ready to go on learning."""
    try:
        return from_state_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"{path} is not a saved pdekit parameter chooser ({err})") from None
