"""Trained checkpoints: rebuild the task they hold, reading them with ``weights_only=True`` and
building only allow-listed classes (:mod:`pdekit.registry`) from plain-typed arguments."""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

import lightning as L
import torch

from pdekit.errors import PdekitError
from pdekit.registry import check_plain, load_class


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
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
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
    try:
        task = cls(**hparams)
    except TypeError as err:
        raise CheckpointError(f"{path}: {info['task']} does not take the stored hyperparameters ({err})") from None
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no weights (no state_dict)")
    try:
        task.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit {info['task']} with the stored hyperparameters "
                              f"({str(err).splitlines()[0]})") from None
    task.data_signature = info.get("data")
    task.levels = (info.get("data") or {}).get("levels", [])
    return task.to(map_location).eval(), info
