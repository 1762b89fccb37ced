"""A data module for solvers that learn from an analytic problem instead of a dataset file
(GP-HM, PINNs): it names the problem (:mod:`pdekit.problems`), optionally brings pointwise labels
(a ``datagen feynman-kac`` file), and paces training — an epoch is ``steps_per_epoch`` optimisation
steps, each fed a dummy batch (the solver owns its points)."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from pdekit.errors import ConfigError
from pdekit.problems import get


class ProblemDataModule(L.LightningDataModule):
    """Args:
        problem: a registered problem name (``pdekit.problems.PROBLEMS``).
        steps_per_epoch: optimisation steps per epoch (progress, logging and checkpoints follow epochs).
        labels: an HDF5 file of Feynman–Kac labels of the same problem (``datagen feynman-kac``).
        max_labels: use only the first this many labels (None: all).
    """

    def __init__(self, problem: str, steps_per_epoch: int = 100, labels: str | None = None,
                 max_labels: int | None = None):
        super().__init__()
        self.problem = get(problem)
        if not (isinstance(steps_per_epoch, int) and steps_per_epoch >= 1):
            raise ConfigError(f"data.init_args.steps_per_epoch must be an integer >= 1, got {steps_per_epoch}")
        if max_labels is not None and not (isinstance(max_labels, int) and max_labels >= 1):
            raise ConfigError(f"data.init_args.max_labels must be an integer >= 1, got {max_labels}")
        self.steps_per_epoch = steps_per_epoch
        self.labels = labels
        self.label_arrays = read_labels(labels, self.problem.name, max_labels) if labels is not None else None
        # what pdekit fit links into every model: the problem's dimension (points in, one value out)
        self.dim, self.in_channels, self.out_channels = self.problem.dim, self.problem.dim, 1

    def train_dataloader(self):
        return DataLoader(torch.arange(self.steps_per_epoch), batch_size=1)

    def signature(self) -> dict:
        return {"problem": self.problem.name, "dim": self.problem.dim, "timeseries": False,
                "labels": None if self.label_arrays is None else int(len(self.label_arrays[0]))}


def read_labels(path, problem: str, max_labels: int | None = None):
    """(points, value, stderr) of a ``datagen feynman-kac`` file, checked to be of ``problem``."""
    from pdekit.data import LABELS_PDE, DatasetFormatError, open_dataset

    if not Path(path).is_file():
        raise ConfigError(f"data.init_args.labels: no such file {path}")
    try:
        with open_dataset(path) as h5:
            if h5.attrs["pde"] != LABELS_PDE:
                raise ConfigError(f"data.init_args.labels: {path} holds pde={h5.attrs['pde']!r} data, "
                                  "not Feynman–Kac labels")
            if h5.attrs["problem"] != problem:
                raise ConfigError(f"data.init_args.labels: {path} labels problem {h5.attrs['problem']!r}, "
                                  f"not {problem!r}")
            arrays = tuple(np.asarray(h5[key][slice(max_labels)], np.float64) for key in ("points", "value", "stderr"))
    except DatasetFormatError as err:
        raise ConfigError(f"data.init_args.labels: {err}") from None
    if not all(np.isfinite(a).all() for a in arrays):
        raise ConfigError(f"data.init_args.labels: {path} holds non-finite labels")
    return arrays
