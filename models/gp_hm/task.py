"""GP-HM as a Lightning task, so ``pdekit fit --config experiments/configs/gp_hm_*.yaml`` trains
it: the problem comes from :class:`pdekit.learning.datamodules.ProblemDataModule` (or ``problem``),
each training step is one Adam step on the negative log joint of :class:`GridGP` (float64)."""
from __future__ import annotations

import torch

from models.gp_hm.solver import GridGP, second_start_step
from pdekit.errors import ConfigError
from pdekit.problems import get
from pdekit.learning.task import Task, check_learning_rate


class GPHM(Task):
    """The GP-HM task: one optimisation step of :class:`GridGP`'s negative log joint per training step.

    Args:
        problem: filled in from the data module (a registered problem name).
        points: collocation points per axis (an int, or one per axis).
        kernel: ``stm`` (GP-HM-StM), ``gm`` (GP-HM-GM), ``se`` or ``matern`` (plain GPs).
        components, max_frequency, boundary_weight, jitter: see :class:`GridGP` (reference 30,
            problem-dependent, 200, 1e-6; ``null`` max_frequency: from the source's spectrum on the
            grid, capped at Nyquist; ``null`` jitter: 10^(−6/d)).
        second_kernel, second_components, second_max_frequency, second_start: the additive second
            process (:class:`GridGP`; off by default); it takes over after ``second_start`` of the
            run's optimiser steps.
        lr: Adam (reference 0.01).
        test_points: per axis, for the relative L2 error against the exact solution logged at
            each epoch's end (``train/rel_l2``: the current model, never a minimum over epochs).
        in_channels, out_channels, dim: linked by ``pdekit fit``; unused.
    """

    data_source = "problem"

    def __init__(self, problem: str | None = None, points: int | list[int] = 200, kernel: str = "stm",
                 components: int = 30, max_frequency: float | list[float] | None = None,
                 boundary_weight: float = 200.0, jitter: float | None = None, second_kernel: str | None = None,
                 second_components: int = 1, second_max_frequency: float = 1.0, second_start: float = 0.01,
                 lr: float = 0.01, test_points: int = 300, in_channels: int = 1,
                 out_channels: int = 1, dim: int = 1, optimizer: dict | None = None,
                 lr_scheduler: dict | str | None = None):
        super().__init__(optimizer, lr_scheduler)
        check_learning_rate(lr)
        self.save_hyperparameters()
        self.gp = self._build(problem) if problem is not None else None

    def _build(self, name: str) -> GridGP:
        h = self.hparams
        try:
            return GridGP(get(name), h.points, h.kernel, h.components, h.max_frequency, h.boundary_weight, h.jitter,
                          h.second_kernel, h.second_components, h.second_max_frequency, h.second_start)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"model.init_args: {err}") from None

    def check_data(self, datamodule) -> None:
        """The problem comes from the data: the GP is built (and its settings checked) here, before
        ``pdekit fit`` writes anything."""
        super().check_data(datamodule)
        if self.hparams.problem not in (None, datamodule.problem.name):
            raise ConfigError(f"model.init_args.problem is {self.hparams.problem!r} but the data module holds "
                              f"{datamodule.problem.name!r}; give the problem once")
        if self.gp is None:
            self.gp = self._build(datamodule.problem.name)
            self.hparams.problem = datamodule.problem.name  # saved with the checkpoint

    def on_train_start(self):
        self._second_switch = second_start_step(self.gp, self.run_length("step"))

    def on_train_batch_start(self, batch, batch_idx):
        # the stage follows the global step, so a resumed run continues in the stage it was in
        if self._second_switch is not None and self.global_step >= self._second_switch:
            self.gp.start_second()

    def training_loss(self, batch):
        return self.gp.loss()

    def non_finite_hint(self) -> str:
        return "lower lr or raise jitter"

    def on_train_epoch_end(self):
        if self.gp.problem.exact is not None:
            self.log("train/rel_l2", self.gp.relative_error(self.hparams.test_points), prog_bar=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The solution at points ``x`` (n, dim)."""
        return self.gp.predict(x)
