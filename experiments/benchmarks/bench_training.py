"""Benchmark (not a test): training steps/s of the same FNO on the same data under `pdekit fit`'s
Lightning stack vs a plain torch loop.  Goal: Lightning overhead <= 10%.

``--contention``: steps/s of the plain loop (the same FNO, 32^2) alone and beside a competing
CPU-heavy torch process (default thread pool, matrix products in a loop), under torch's default
thread count, pdekit's default (:func:`pdekit.resources.limit_threads`) and one thread: the
measurement behind pdekit's thread default.

Both run the same task module (normalization, loss), optimizer (AdamW), data loader (same
sampler and batch size, lazy HDF5 reads) and number of steps; the Lightning run has what
`pdekit fit` has (CSV logger, per-step metrics and throughput logging, NaN check, an end-of-epoch
checkpoint), validation off.  The first epoch is a warm-up and not timed.

    python -m experiments.benchmarks.bench_training [--small] [--device cuda] [--out results.json]
    python -m experiments.benchmarks.bench_training --contention [--out results.json]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from datagen import runner
from datagen.generators import config_for
from experiments.common import print_table, write_json
from pdekit.learning.datamodules import FieldDataModule
from pdekit.learning.tasks import OperatorLearning


class EpochTimer(L.Callback):
    def __init__(self):
        self.times = []

    def on_train_epoch_start(self, trainer, module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)


def make_task(dm, width):
    torch.manual_seed(0)
    modes = [12] * dm.dim
    return OperatorLearning(network_kwargs={"n_modes": modes, "hidden_channels": width, "n_layers": 4},
                            in_channels=dm.in_channels, out_channels=dm.out_channels, dim=dm.dim)


def lightning_run(path, folder, epochs, batch, width, device):
    dm = FieldDataModule([str(path)], batch_size=batch, split=[1.0, 0.0, 0.0])
    task = make_task(dm, width)
    timer = EpochTimer()
    trainer = L.Trainer(max_epochs=epochs, accelerator=device, devices=1, default_root_dir=folder,
                        logger=L.pytorch.loggers.CSVLogger(folder, name="logs"), callbacks=[timer],
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        use_distributed_sampler=False, log_every_n_steps=1)
    trainer.fit(task, dm, weights_only=True)
    steps = trainer.num_training_batches
    return steps * (epochs - 1) / sum(timer.times[1:])


def plain_run(path, epochs, batch, width, device):
    dm = FieldDataModule([str(path)], batch_size=batch, split=[1.0, 0.0, 0.0])
    dm.setup("fit")
    task = make_task(dm, width)
    task.normalizer.set(dm.stats)
    task = task.to(device)
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = dm.train_dataloader()
    times, steps = [], 0
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        steps = 0
        for batch in loader:
            x, y, mask = (batch[k].to(device) for k in ("x", "y", "mask"))
            optimizer.zero_grad()
            loss = task.loss_fn(task(x, mask), y)
            loss.backward()
            optimizer.step()
            steps += 1
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return steps * (epochs - 1) / sum(times[1:])


COMPETITOR = "import torch\na = torch.randn(1500, 1500)\nwhile True:\n    a @ a\n"


def _measure(path, threads: str, competing: bool) -> float:
    """Plain-loop steps/s in a fresh process (thread pools are fixed at start-up)."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    env.pop("PDEKIT_THREADS", None)
    if threads != "torch default":
        env["PDEKIT_THREADS"] = "" if threads == "pdekit default" else threads
    rival = subprocess.Popen([sys.executable, "-c", COMPETITOR]) if competing else None
    try:
        time.sleep(2 if competing else 0)  # let the rival's pool spin up
        out = subprocess.run([sys.executable, "-m", "experiments.benchmarks.bench_training", "--worker", str(path),
                              "--threads", "none" if threads == "torch default" else "pdekit"],
                             env=env, capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[2])  # the repository root: -m finds experiments
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()
    return float(out.stdout.strip().splitlines()[-1])


def contention(args):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "easy_32.h5"
        runner.run(config_for("poisson", "easy", 128, 32, dim=2), path, progress=False)
        for threads in ("torch default", "pdekit default", "1"):
            alone = _measure(path, threads, competing=False)
            shared = _measure(path, threads, competing=True)
            rows.append({"threads": threads, "alone_steps_per_s": alone, "competing_steps_per_s": shared,
                         "slowdown": alone / shared})
    print_table("steps/s of the plain loop (FNO, 32^2) alone and beside a CPU-heavy torch process", rows)
    if args.out:
        write_json(args.out, rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    parser.add_argument("--contention", action="store_true", help="thread defaults beside a competing process")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", default="none", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.threads == "pdekit":
            from pdekit.resources import limit_threads

            limit_threads()
        print(f"threads {torch.get_num_threads()}", file=sys.stderr)
        print(plain_run(args.worker, 3, 16, 32, "cpu"))
        return
    if args.contention:
        return contention(args)
    cases = [(32, 128, 16, 32, 4)] if args.small else [(32, 512, 16, 32, 4), (64, 256, 16, 32, 4)]
    print(f"# training benchmark: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"device {args.device}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for resolution, n, batch, width, epochs in cases:
            path = Path(tmp) / f"easy_{resolution}.h5"
            runner.run(config_for("poisson", "easy", n, resolution, dim=2), path, progress=False)
            plain = plain_run(path, epochs, batch, width, args.device)
            lightning = lightning_run(path, tmp, epochs, batch, width, args.device)
            rows.append({"grid": f"{resolution}^2", "samples": n, "batch": batch, "plain_steps_per_s": plain,
                         "pdekit_fit_steps_per_s": lightning, "overhead_pct": 100 * (plain / lightning - 1)})
    print_table("steps/s: plain torch loop vs pdekit fit's Lightning stack", rows)
    if args.out:
        write_json(args.out, rows)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
