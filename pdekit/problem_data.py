"""A data module for solvers that learn from an analytic problem instead of a dataset file
(GP-HM, PINNs): it names the problem (:mod:`pdekit.problems`) and paces training — an epoch is
``steps_per_epoch`` optimisation steps, each fed a dummy batch (the solver owns its points)."""
from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from pdekit.errors import ConfigError
from pdekit.problems import get


class ProblemDataModule(L.LightningDataModule):
    """Args:
        problem: a registered problem name (``pdekit.problems.PROBLEMS``).
        steps_per_epoch: optimisation steps per epoch (progress, logging and checkpoints follow epochs).
    """

    def __init__(self, problem: str, steps_per_epoch: int = 100):
        super().__init__()
        self.problem = get(problem)
        if not (isinstance(steps_per_epoch, int) and steps_per_epoch >= 1):
            raise ConfigError(f"data.init_args.steps_per_epoch must be an integer >= 1, got {steps_per_epoch}")
        self.steps_per_epoch = steps_per_epoch
        # what pdekit fit links into every model: the problem's dimension (points in, one value out)
        self.dim, self.in_channels, self.out_channels = self.problem.dim, self.problem.dim, 1

    def train_dataloader(self):
        return DataLoader(torch.arange(self.steps_per_epoch), batch_size=1)

    def signature(self) -> dict:
        return {"problem": self.problem.name, "dim": self.problem.dim, "timeseries": False}
