"""Difficulty levels as frozen dataclasses: build one from a dict or a YAML file (``--spec``),
optionally starting from a named level (``base: medium``), with errors that name the bad key.

A level class lists its axes as fields (plain ``int``/``float``/``str``/``bool`` or tuples of
them) and may define ``problems()`` returning messages for inconsistent values.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, fields
from pathlib import Path

from pdekit.errors import yaml_problem

LARGEST_INT = 2**31 - 1  # no level axis counts anything near this; larger values would overflow samplers


def number(annotation: str, value):
    """An int or float axis value.  PyYAML reads ``1e4`` (no dot) as a string: a string that
    spells a number is accepted as that number.  An integer axis refuses a fraction (2.7 is not
    truncated to 2); every axis refuses NaN and infinity."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    if annotation == "float":
        return float(value)
    if value != int(value):
        raise ValueError(f"expected an integer, got {value!r}")
    if abs(int(value)) > LARGEST_INT:
        raise ValueError(f"{int(value)} is too large (at most {LARGEST_INT})")
    return int(value)


def positive(value, what: str) -> float:
    """A float > 0 from a spec value (a string such as PyYAML's ``1e-3`` counts); errors name ``what``."""
    try:
        value = number("float", value)
    except ValueError as err:
        raise ValueError(f"{what} must be a positive number ({err})") from None
    if not value > 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return value


def _coerce(annotation: str, value):
    annotation = annotation.replace(" ", "")
    if annotation in ("int", "float"):
        return number(annotation, value)
    if annotation == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true/false, got {value!r}")
        return value
    if annotation == "str":
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {value!r}")
        return value
    if annotation.startswith("tuple["):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        inner = annotation[len("tuple["):-1].split(",")
        if inner[-1] == "...":
            return tuple(_coerce(inner[0], v) for v in value)
        if len(inner) != len(value):
            raise ValueError(f"expected {len(inner)} values, got {len(value)}")
        return tuple(_coerce(a, v) for a, v in zip(inner, value))
    raise TypeError(f"unsupported level field type {annotation}")


def from_dict(cls, levels: dict, spec, source: str = "spec"):
    """An instance of the level dataclass ``cls`` from explicit axis values."""
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: expected a mapping of level axes, got {type(spec).__name__}")
    names = [f.name for f in fields(cls)]
    spec = dict(spec)
    if hasattr(cls, "translate_spec"):  # user-facing keys that are not axes (e.g. a channel's length)
        spec = cls.translate_spec(spec, source)
    unknown = sorted(set(spec) - set(names) - {"base"})
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; a level has {names} (and optional base)")
    base = spec.pop("base", None)
    if base is not None and base not in levels:
        raise ValueError(f"{source}: unknown base level {base!r}; choose from {', '.join(levels)}")
    values = {**(asdict(levels[base]) if base else {}), **spec}
    if "description" in names and "description" not in spec:
        changed = sorted(set(spec) - {"name"})
        values["description"] = f"{base} with {', '.join(changed) or 'nothing'} changed" if base else "custom level"
    for f in fields(cls):  # axes added later have defaults, so older specs stay valid
        if f.name not in values and f.default is not MISSING:
            values[f.name] = f.default
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"{source}: missing key(s) {missing}")
    coerced = {}
    for f in fields(cls):
        try:
            coerced[f.name] = _coerce(str(f.type), values[f.name])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: bad value for {f.name} ({err})") from None
    level = cls(**coerced)
    for message in level.problems() if hasattr(level, "problems") else ():
        raise ValueError(f"{source}: {message}")
    return level


def load(cls, levels: dict, path):
    """A level from a YAML file (safe loader)."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ValueError(f"no such level spec: {path}")
    if path.is_dir():
        raise ValueError(f"level spec {path} is a folder, not a YAML file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read level spec {path}: {getattr(err, 'strerror', None) or err}") from None
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {yaml_problem(err)}") from None
    return from_dict(cls, levels, spec, str(path))


def resolve(levels: dict, level):
    """A named level (or a level instance, returned as is)."""
    if not isinstance(level, str):
        return level
    if level not in levels:
        raise ValueError(f"unknown level {level!r}; choose from {', '.join(levels)} or pass --spec level.yaml")
    return levels[level]
