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


class SignalAtStep(Callback):
    """Send this process ``signal_name`` (SIGTERM as a scheduler does, SIGINT as Ctrl-C does) at the
    start of the batch after ``step`` optimizer steps."""

    def __init__(self, step: int, signal_name: str = "SIGTERM"):
        self.step, self.signal = step, getattr(signal, signal_name)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signal)


import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


class PeriodicHeatPropagator(nn.Module):
    """The exact one-step map of u_t = nu u_xx on a periodic 1-D grid of ``n`` points over
    [0, 2 pi) for time step ``dt`` (a Fourier multiplier): a network with a known answer."""

    def __init__(self, in_channels: int, out_channels: int, nu: float, dt: float, n: int):
        super().__init__()
        k = np.fft.rfftfreq(n, d=1.0 / n)
        self.register_buffer("multiplier", torch.as_tensor(np.exp(-nu * k**2 * dt), dtype=torch.float32))

    def forward(self, x):
        return torch.fft.irfft(torch.fft.rfft(x[:, -1:], dim=-1) * self.multiplier, n=x.shape[-1], dim=-1)


def heat_trajectories(samples: int, steps: int, n: int, nu: float, dt: float, seed: int = 0):
    """Exact solutions sum_k c_k exp(-nu k^2 t) sin(k x + phi_k), k = 1..6, on the grid."""
    rng = np.random.default_rng(seed)
    x = 2 * np.pi * np.arange(n) / n
    t = dt * np.arange(steps)
    u = np.zeros((samples, steps, n))
    for s in range(samples):
        for k in range(1, 7):
            c, phi = rng.standard_normal() / k, rng.uniform(0, 2 * np.pi)
            u[s] += c * np.exp(-nu * k**2 * t)[:, None] * np.sin(k * x + phi)[None, :]
    return t, u
