"""Time-dependent inflow of the channel: a waveform ``f(t)`` that scales the inflow profile.

A spec's ``inflow`` key names one (the Python API takes any function of ``t`` as well):

* ``constant`` (default): ``f = value`` (1);
* ``ramp``: ``f`` rises from ``start`` (0) to ``value`` (1) over ``duration``, smoothly
  (``(1 - cos(pi t / duration)) / 2``, so the inflow's acceleration has no jump at either end), then
  stays;
* ``sine``: ``f = offset + amplitude sin(2 pi t / period + phase)`` (offset 0, amplitude 1, phase 0);
  the DFG benchmark 2D-3 is ``{waveform: sine, period: 16}`` on ``t`` in [0, 8];
* ``table``: ``points: [[t, f], ...]`` with increasing ``t``, linear in between, held constant
  beyond the ends.

A waveform with ``f(0) = 0`` starts the flow from rest.  The stored form is canonical JSON, so a
file's config records exactly what ran.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

WAVEFORMS = ("constant", "ramp", "sine", "table")
_KEYS = {"constant": {"value"}, "ramp": {"duration", "start", "value"},
         "sine": {"period", "amplitude", "offset", "phase"}, "table": {"points"}}


def _number(value, what: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        value = float(value)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(value) or (positive and not value > 0):
        raise ValueError(f"{what} must be a {'positive ' if positive else ''}finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class Waveform:
    """A named inflow waveform; call it with ``t`` (a float) for the factor ``f(t)``."""

    kind: str = "constant"
    params: tuple = ()  # sorted (key, value) pairs; a table's points as a tuple of (t, f)

    @classmethod
    def parse(cls, spec, source: str = "inflow") -> "Waveform":
        """From a spec value: a name (``"constant"``, ``"ramp"`` ...), a mapping
        ``{waveform: ..., <parameters>}``, or the stored JSON of either.  Bad values raise one-line
        ``ValueError`` naming the problem."""
        if isinstance(spec, Waveform):
            return spec
        if isinstance(spec, str) and spec.lstrip().startswith("{"):
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError as err:
                raise ValueError(f"{source}: not JSON ({err})") from None
        if isinstance(spec, str):
            spec = {"waveform": spec or "constant"}  # "": a level's stored default
        if not isinstance(spec, dict):
            raise ValueError(f"{source} must be a waveform name or a mapping with `waveform:`, got {spec!r}")
        spec = dict(spec)
        kind = spec.pop("waveform", "constant")
        if kind not in WAVEFORMS:
            raise ValueError(f"{source}: waveform must be one of {', '.join(WAVEFORMS)}, got {kind!r}")
        unknown = sorted(set(spec) - _KEYS[kind])
        if unknown:
            raise ValueError(f"{source}: a {kind} waveform takes {', '.join(sorted(_KEYS[kind]))}, "
                             f"not {', '.join(map(str, unknown))}")
        try:
            if kind == "table":
                points = spec.get("points")
                if not isinstance(points, list) or len(points) < 1 or not all(
                        isinstance(p, (list, tuple)) and len(p) == 2 for p in points):
                    raise ValueError(f"table points must be a non-empty list of [t, f] pairs, got {points!r}")
                pairs = tuple((_number(t, "table time"), _number(f, "table factor")) for t, f in points)
                if any(b[0] <= a[0] for a, b in zip(pairs, pairs[1:])):
                    raise ValueError("table times must increase strictly")
                return cls(kind, pairs)
            required = {"ramp": ("duration",), "sine": ("period",)}.get(kind, ())
            for key in required:
                if key not in spec:
                    raise ValueError(f"a {kind} waveform needs `{key}`")
            values = {key: _number(value, key, positive=key in ("duration", "period")) for key, value in spec.items()}
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
        return cls(kind, tuple(sorted(values.items())))

    def _get(self, key: str, default: float) -> float:
        return dict(self.params).get(key, default)

    def __call__(self, t: float) -> float:
        if self.kind == "constant":
            return self._get("value", 1.0)
        if self.kind == "ramp":
            start, value, duration = self._get("start", 0.0), self._get("value", 1.0), self._get("duration", 1.0)
            s = min(max(t / duration, 0.0), 1.0)
            return start + (value - start) * 0.5 * (1.0 - math.cos(math.pi * s))
        if self.kind == "sine":
            return self._get("offset", 0.0) + self._get("amplitude", 1.0) * math.sin(
                2.0 * math.pi * t / self._get("period", 1.0) + self._get("phase", 0.0))
        times, factors = zip(*self.params)
        return float(np.interp(t, times, factors))

    def peak(self, t_end: float) -> float:
        """``max |f|`` over ``[0, t_end]`` (the step size follows it)."""
        if self.kind == "table":
            times = [0.0, t_end] + [t for t, _ in self.params if 0.0 <= t <= t_end]
            return max(abs(self(t)) for t in times)
        return peak(self, t_end)

    def to_json(self) -> str:
        """The canonical stored form (``Waveform.parse`` reads it back)."""
        if self.kind == "table":
            return json.dumps({"waveform": "table", "points": [list(p) for p in self.params]})
        return json.dumps({"waveform": self.kind, **dict(self.params)}, sort_keys=True)

    @property
    def constant(self) -> bool:
        return self.kind == "constant"


def peak(function, t_end: float, samples: int = 4001) -> float:
    """``max |f|`` of any function of ``t`` over ``[0, t_end]``, sampled (for the step size)."""
    ts = np.linspace(0.0, max(float(t_end), 0.0), samples)
    values = np.array([float(function(float(t))) for t in ts])
    if not np.isfinite(values).all():
        raise ValueError("the inflow waveform is not finite on [0, t_end]")
    return float(np.abs(values).max())


def describe(function) -> str:
    """What a state or file records about an inflow: a waveform's JSON, else the function's name."""
    if isinstance(function, Waveform):
        return function.to_json()
    return json.dumps({"waveform": "python", "name": getattr(function, "__qualname__", type(function).__name__)})
