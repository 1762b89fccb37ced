"""Helpers that `pdekit fit` subprocesses load by class path in the training tests."""
import os
import signal

from lightning.pytorch.callbacks import Callback


class KillAtStep(Callback):
    """SIGKILL this process at the start of the batch after ``step`` optimizer steps (by then the
    every-step checkpoint of step ``step`` is on disk): a real, unclean interruption mid-epoch."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
