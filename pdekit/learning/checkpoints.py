"""Trained checkpoints: rebuild the task they hold, reading them with ``weights_only=True`` and
building only allow-listed classes (:mod:`pdekit.learning.registry`) from plain-typed arguments."""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

import lightning as L
import torch

from pdekit.errors import PdekitError
from pdekit.learning.registry import check_plain, load_class


class CheckpointError(PdekitError, ValueError):
    """A checkpoint that is not pdekit's, or does not fit the model or the data."""


def read_weights_only(path) -> dict:
    """``torch.load(path, weights_only=True)`` with one-line errors: a missing, foreign, truncated or
    pickled file is refused, without torch's advice to retry with ``weights_only=False``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if not zipfile.is_zipfile(path):  # what torch.save writes
        raise CheckpointError(f"{path} is not a torch checkpoint (truncated, or another kind of file)")
    _check_archive(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except RecursionError:
        raise CheckpointError(f"{path} holds data nested too deeply to be a checkpoint; refused") from None
    except Exception as err:
        text = str(err)
        forbidden = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if forbidden or "Weights only load failed" in text:
            what = f" (it pickles {forbidden.group(1)})" if forbidden else ""
            raise CheckpointError(f"{path} holds pickled Python objects{what}; pdekit reads checkpoints as weights "
                                  "only and refuses to unpickle code") from None
        raise CheckpointError(f"{path} is not a readable torch checkpoint (truncated or corrupt: "
                              f"{text.splitlines()[0] if text else type(err).__name__})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a training checkpoint")
    return checkpoint


def _check_archive(path: Path) -> None:
    """torch.save stores its archive's entries uncompressed: a compressed entry (a small file that
    would inflate to gigabytes) or one larger than the file itself means tampering."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({err})") from None
    size = path.stat().st_size
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED or entry.file_size > size:
            raise CheckpointError(f"{path}: entry {entry.filename} is compressed or larger than the file "
                                  f"({entry.file_size} bytes); torch.save never writes that — refused")


def _check_weights(path, state: dict) -> None:
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        if value.is_floating_point() or value.is_complex():
            if not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"{path}: weight {key!r} holds NaN or Inf; refused")


def _build(cls, hparams: dict, path, name: str):
    """``cls(**hparams)`` with one-line errors for hyperparameters it refuses."""
    try:
        return cls(**hparams)
    except PdekitError:
        raise  # already names the problem (a refused class, a bad value)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: {name} does not take the stored hyperparameters "
                              f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None


def weights_mismatch(expected: dict, stored: dict) -> str | None:
    """How the tensors ``stored`` fail to fit a model whose ``state_dict()`` is ``expected`` (the
    first missing, unexpected or differently shaped entries), or None when they fit."""
    shapes = lambda state: {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}  # noqa: E731
    want, have = shapes(expected), shapes(stored)
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    differ = sorted(k for k in set(want) & set(have) if want[k] != have[k])
    if missing:
        return f"missing {missing[:3]}"
    if unexpected:
        return f"unexpected {unexpected[:3]}"
    if differ:
        return f"{differ[0]}: {have[differ[0]]} stored, {want[differ[0]]} built"
    return None


def _check_shapes_on_meta(cls, hparams: dict, state: dict, path, name: str) -> None:
    """Build the task on the meta device first (no memory) and compare every parameter's shape with
    the stored tensors: recorded sizes (a width of 1e6, 1,500 channels) never decide what is allocated
    before they are known to fit the weights."""
    try:
        with torch.device("meta"):
            probe = _build(cls, hparams, path, name)
    except PdekitError:
        raise
    except Exception:  # a constructor that computes on real data cannot run on meta: the sizes are checked after
        return
    what = weights_mismatch(probe.state_dict(), state)
    if what:
        raise CheckpointError(f"{path}: weights do not fit {name} with the stored hyperparameters ({what})")


def load_task(path, map_location="cpu") -> tuple[L.LightningModule, dict]:
    """Rebuild the trained task from a checkpoint: weights only, allow-listed task and network
    classes, plain-typed hyperparameters."""
    checkpoint = read_weights_only(path)
    info = checkpoint.get("pdekit")
    if not isinstance(info, dict) or not isinstance(info.get("task"), str):
        raise CheckpointError(f"{path} is not a pdekit training checkpoint (no 'pdekit' record)")
    hparams = info.get("hparams") or {}
    if not isinstance(hparams, dict):
        raise CheckpointError(f"{path}: the task's hyperparameters are not a mapping")
    hparams = {k: v for k, v in hparams.items() if not str(k).startswith("_")}
    check_plain(hparams, f"{path}: hyperparameters")
    check_plain(info.get("data"), f"{path}: data record")
    cls = load_class(info["task"], L.LightningModule, "task")  # refuses before importing anything else
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no weights (no state_dict)")
    _check_weights(path, state)
    _check_shapes_on_meta(cls, hparams, state, path, info["task"])
    task = _build(cls, hparams, path, info["task"])
    try:
        task.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit {info['task']} with the stored hyperparameters "
                              f"({str(err).splitlines()[0]})") from None
    task.data_signature = info.get("data")
    task.levels = (info.get("data") or {}).get("levels", [])
    return task.to(map_location).eval(), info
