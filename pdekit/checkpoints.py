"""Trained checkpoints: rebuild the task they hold, reading them with ``weights_only=True``."""
from __future__ import annotations

import zipfile
from pathlib import Path

import lightning as L
import torch

from pdekit.errors import PdekitError
from pdekit.tasks import import_class


class CheckpointError(PdekitError, ValueError):
    """A checkpoint that is not pdekit's, or does not fit the model or the data."""


def load_task(path, map_location="cpu") -> tuple[L.LightningModule, dict]:
    """Rebuild the trained task from a checkpoint (``weights_only=True``: no code is unpickled)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if not zipfile.is_zipfile(path):  # what torch.save writes
        raise CheckpointError(f"{path} is not a torch checkpoint")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle errors name the forbidden global; keep the first line
        raise CheckpointError(f"{path} cannot be loaded with weights_only=True: {str(err).splitlines()[0]}") from None
    info = checkpoint.get("pdekit") if isinstance(checkpoint, dict) else None
    if not info or "task" not in info:
        raise CheckpointError(f"{path} is not a pdekit training checkpoint (no 'pdekit' record)")
    cls = import_class(info["task"])
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
        raise CheckpointError(f"{path}: task {info['task']} is not a LightningModule")
    hparams = {k: v for k, v in info["hparams"].items() if not k.startswith("_")}
    task = cls(**hparams)
    try:
        task.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit {info['task']} with the stored hyperparameters "
                              f"({str(err).splitlines()[0]})") from None
    task.data_signature = info.get("data")
    task.levels = (info.get("data") or {}).get("levels", [])
    return task.eval(), info
