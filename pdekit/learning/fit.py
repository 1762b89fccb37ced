"""`pdekit fit|validate|test|predict`: Lightning's own CLI (LightningCLI + jsonargparse) over
pdekit's tasks and data module, so configs are plain YAML with ``class_path``/``init_args`` and
any key can be overridden on the command line.

pdekit's changes to LightningCLI: a checkpoint given by ``--ckpt_path`` supplies weights only
(LightningCLI would also take the model's hyperparameters, class path included, from it) and is
checked before training starts; the model's class path must be allow-listed
(:mod:`pdekit.learning.registry`); a parse error is one line naming the bad key; ``predict`` writes an
HDF5 file (:mod:`pdekit.learning.predict`).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningCLI

from pdekit.errors import ConfigError
from pdekit.learning.configs import check_config_files, expand_includes

# where Lightning itself resolves a checkpoint; anything else names a file
LIGHTNING_CKPT_ALIASES = ("last", "best", "hpc", "registry")


class PdekitCLI(LightningCLI):
    def init_parser(self, **kwargs):
        kwargs["exit_on_error"] = False  # errors come back as exceptions: pdekit reports them in one line
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser):
        # the data decides the channel counts and dimension the network is built for
        for attribute in ("in_channels", "out_channels", "dim"):
            parser.link_arguments("data", f"model.init_args.{attribute}",
                                  compute_fn=lambda data, a=attribute: getattr(data, a), apply_on="instantiate")
        parser.add_argument("--include", default=None,
                            help="in a config file: another config this one builds on (relative path; read first)")
        parser.add_argument("--predictions", default=None,
                            help="predict: the HDF5 file to write (default: <trainer.default_root_dir>/predictions.h5)")
        # one run folder: checkpoints in <trainer.default_root_dir>/checkpoints (last.ckpt always), logs in
        # <trainer.default_root_dir>/logs, so `--trainer.default_root_dir runs/other` moves everything
        from lightning.pytorch.callbacks import ModelCheckpoint

        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.link_arguments("trainer.default_root_dir", "checkpoint.dirpath", compute_fn=checkpoint_folder)

    def instantiate_trainer(self, **kwargs):
        """The trainer with pdekit's run-folder defaults: the ``checkpoint`` callback (unless a config
        lists a ModelCheckpoint of its own in ``trainer.callbacks``, as configs written before it did,
        or turns checkpointing off)
        and a CSV logger in ``<default_root_dir>/logs`` where ``trainer.logger`` is left at its default."""
        from lightning.pytorch.callbacks import ModelCheckpoint
        from lightning.pytorch.loggers import CSVLogger

        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        callbacks = config.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        own = any(isinstance(c, ModelCheckpoint) for c in callbacks)
        extra = [] if own or config.get("enable_checkpointing") is False else [self._get(self.config_init, "checkpoint")]
        if config.get("logger") in (None, True) and config.get("default_root_dir"):
            config["logger"] = CSVLogger(save_dir=config["default_root_dir"], name="logs")
        return self._instantiate_trainer(config, extra)

    def _parse_ckpt_path(self):
        """Lightning would take the model's hyperparameters (and class path) from the checkpoint:
        a checkpoint must never decide what code runs, so the config alone defines the model."""

    def before_instantiate_classes(self):
        from pdekit.learning.registry import load_class

        config = self.config[self.config.subcommand] if self.config.get("subcommand") else self.config
        config.include = None  # already read in; the run's saved config.yaml is complete without it
        load_class(config.model.class_path, L.LightningModule, "model")
        if config.get("data") is not None and getattr(config.data, "class_path", None):
            load_class(config.data.class_path, L.LightningDataModule, "data")

    overwrite = False  # `pdekit fit --overwrite`: a fresh run may replace an earlier run's checkpoints

    def _run_subcommand(self, subcommand):
        ckpt = self.config_init[subcommand].get("ckpt_path")
        if ckpt and ckpt not in LIGHTNING_CKPT_ALIASES:
            check_resume_checkpoint(ckpt, self.model)
        if hasattr(self.model, "check_data") and self.datamodule is not None:
            self.model.check_data(self.datamodule)  # before Lightning writes config.yaml and logs
        if subcommand == "fit" and not ckpt:
            check_fresh_checkpoint_folders(self.trainer, self.overwrite)
        from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

        if type(self.trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default writer
            self.trainer.strategy.checkpoint_io = umask_checkpoint_io()
        if subcommand == "predict":
            from pdekit.learning.predict import PredictionWriter

            path = self.config_init[subcommand].get("predictions") or \
                Path(self.trainer.default_root_dir) / "predictions.h5"
            self.trainer.callbacks.append(PredictionWriter(path))
        super()._run_subcommand(subcommand)


def checkpoint_folder(root_dir) -> str | None:
    """Where a run's checkpoints go: ``<trainer.default_root_dir>/checkpoints``."""
    return None if root_dir is None else str(Path(root_dir) / "checkpoints")


def _checkpoint_folders(trainer) -> list[Path]:
    return [Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]


def check_fresh_checkpoint_folders(trainer, overwrite: bool) -> None:
    """A new run (no ``--ckpt_path``) must not mix its checkpoints with an earlier run's (Lightning
    would write ``last-v1.ckpt`` beside the old ``last.ckpt``, and the next command would read the
    old one): refuse, or with ``--overwrite`` remove the earlier checkpoints (only ``*.ckpt``)."""
    for folder in _checkpoint_folders(trainer):
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise ConfigError(f"checkpoint folder {folder} is not a folder (a file or a link)")
        earlier = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
        if not earlier:
            continue
        if not overwrite:
            raise ConfigError(f"{folder} already holds checkpoints of an earlier run ({earlier[0].name}"
                              f"{f' and {len(earlier) - 1} more' if len(earlier) > 1 else ''}): resume it with "
                              "--ckpt_path last, or start afresh with --overwrite (removes them)")
        for path in earlier:
            if path.is_symlink() or path.is_file():
                path.unlink()
        print(f"pdekit: removed {len(earlier)} checkpoint(s) of an earlier run from {folder} (--overwrite)",
              file=sys.stderr)


def umask_checkpoint_io():
    """Lightning's checkpoint writer with pdekit's atomic write for local paths: a temporary file
    beside the target, renamed over it, with the permissions the user's umask gives (Lightning's own
    goes through a private temporary file and leaves checkpoints 0600 whatever the umask)."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    class UmaskCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            if storage_options is not None or "://" in str(path):
                return super().save_checkpoint(checkpoint, path, storage_options)
            import torch

            from pdekit.files.atomic import atomic_path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                torch.save(checkpoint, tmp)

    return UmaskCheckpointIO()


class TrainingInterrupted(Exception):
    """``pdekit fit`` stopped by a signal: the exit status says so (128 + signal number)."""

    def __init__(self, signal_name: str, exit_code: int, message: str):
        super().__init__(message)
        self.signal_name, self.exit_code = signal_name, exit_code


class InterruptionCheckpoint(Callback):
    """On SIGTERM (a scheduler's pre-emption, ``kill``) or a first SIGINT (Ctrl-C) during training,
    finish the step under way, write ``last.ckpt`` where each checkpoint callback keeps it, and
    stop; ``--ckpt_path last`` then resumes exactly there (the data loaders' position is in the
    checkpoint).  The checkpoint is written at the end of a batch, the point where Lightning's own
    step checkpoints are taken, so the resumed run equals an uninterrupted one.  A second Ctrl-C
    stops at once."""

    def __init__(self):
        self.signal_name, self.step, self.saved = None, None, []
        self._previous_sigint = None

    def on_fit_start(self, trainer, pl_module):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def on_fit_end(self, trainer, pl_module):
        self._restore_sigint()

    def _restore_sigint(self):
        import signal

        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def _on_sigint(self, signum, frame):
        if self.signal_name == "SIGINT":  # the second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal_name = "SIGINT"
        print("\npdekit: SIGINT: stopping after this step (Ctrl-C again to stop at once)", file=sys.stderr)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.received_sigterm:
            self.signal_name = "SIGTERM"
        if self.signal_name is None:
            return
        self.step = trainer.global_step
        # one process only: with several, a save here would wait at a barrier the others never reach
        if trainer.world_size == 1:
            for callback in trainer.checkpoint_callbacks:
                if getattr(callback, "dirpath", None) and getattr(callback, "save_last", False):
                    path = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
                    trainer.save_checkpoint(path)
                    self.saved.append(str(path))
        if self.signal_name == "SIGINT":
            raise KeyboardInterrupt  # Lightning stops on it (SIGTERM: it raises its own exception next)

    def on_exception(self, trainer, pl_module, exception):
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        self._restore_sigint()
        if isinstance(exception, SIGTERMException):
            self.signal_name = "SIGTERM"
        elif isinstance(exception, KeyboardInterrupt):
            self.signal_name = "SIGINT"
        if self.signal_name is not None and self.step is None:
            self.step = trainer.global_step


def resume_command(argv: list[str]) -> str:
    """The ``pdekit`` command line that resumes the run ``argv`` started (``--ckpt_path last``)."""
    import shlex

    args, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a in ("--ckpt_path", "--weights_only", "--overwrite") or a.startswith(("--ckpt_path=", "--weights_only=")):
            skip = a in ("--ckpt_path", "--weights_only")
            continue
        args.append(a)
    return shlex.join(["pdekit", *args, "--ckpt_path", "last"])


def check_resume_checkpoint(path, model) -> None:
    """Refuse, in one line and before any work, a ``--ckpt_path`` that is missing, pickled,
    truncated, or holds another model's weights."""
    from pdekit.learning.checkpoints import CheckpointError, read_weights_only, weights_mismatch
    from pdekit.learning.registry import resolve_moved

    checkpoint = read_weights_only(path)
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no model weights (not a Lightning training checkpoint)")
    record = checkpoint.get("pdekit") if isinstance(checkpoint.get("pdekit"), dict) else {}
    cls = type(model)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if record.get("task") is not None and resolve_moved(record["task"]) != name:
        raise CheckpointError(f"{path} holds a {record['task']} model; the config builds a {name}")
    what = weights_mismatch(model.state_dict(), state)
    if what:
        raise CheckpointError(f"{path}: its weights do not fit the configured model ({what})")


_NOISE = ("Does not validate", "Subtypes:", "Errors:", "Given value", "- Expected a <class 'NoneType'>")


def parser_error_line(message: str) -> str:
    """jsonargparse's nested, many-line error as one line: the dotted key and the innermost cause."""
    keys, class_path, detail = [], None, None
    for line in (raw.strip() for raw in message.splitlines()):
        key = re.match(r'Parser key "([^"]+)":', line)
        problem = re.match(r"- Problem with given class_path '([^']+)':", line)
        if key:
            keys.append(key.group(1))
        elif problem:
            class_path = problem.group(1)
            keys.append("init_args")
        elif line and not line.startswith(_NOISE):
            detail = line
            break
    if detail is None:
        detail = message.strip().splitlines()[0] if message.strip() else "invalid arguments"
    if class_path and keys and keys[-1] == "init_args" and not detail.startswith(("Option", "Key", "Parser")):
        return f"{'.'.join(keys[:-1])}.class_path {class_path!r}: {detail}"
    return f"{'.'.join(keys)}: {detail}" if keys else detail


def run(argv: list[str]) -> None:
    user_argv = list(argv)
    check_config_files(argv)
    if any(a.startswith("--checkpoint.dirpath") for a in argv):
        raise ConfigError("checkpoint.dirpath follows trainer.default_root_dir (<root>/checkpoints): set "
                          "--trainer.default_root_dir to move the run, checkpoints and logs together")
    argv = expand_includes(argv)
    if not any(a.startswith("--weights_only") for a in argv):
        # checkpoints given by --ckpt_path are read with weights_only=True, explicitly
        argv = [argv[0], "--weights_only", "true", *argv[1:]]
    overwrite = "--overwrite" in argv
    argv = [a for a in argv if a != "--overwrite"]
    # LightningCLI reads sys.argv (and DDP's launcher re-runs it); it warns if handed args as well
    sys.argv = [sys.argv[0], *argv]

    interruption = InterruptionCheckpoint()
    cli_class = type("PdekitRunCLI", (PdekitCLI,), {"overwrite": overwrite})
    try:
        cli_class(L.LightningModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                  save_config_kwargs={"overwrite": True},
                  # pdekit's samplers shard across ranks themselves (and resume mid-epoch); Lightning
                  # must not wrap them in a DistributedSampler
                  trainer_defaults={"use_distributed_sampler": False, "callbacks": [interruption]},
                  args=None, auto_configure_optimizers=False)
    except (SystemExit, KeyboardInterrupt) as stop:
        if interruption.signal_name is None and not isinstance(stop, KeyboardInterrupt):
            raise
        name = interruption.signal_name or "SIGINT"
        kept = (f"checkpoint written: {', '.join(interruption.saved)}" if interruption.saved
                else "no checkpoint written by the interruption (earlier ones are kept)")
        where = f" at step {interruption.step}" if interruption.step is not None else ""
        raise TrainingInterrupted(
            name, 143 if name == "SIGTERM" else 130,
            f"{argv[0]} stopped by {name}{where}, not finished; {kept}; resume with: "
            f"{resume_command(user_argv)}") from None
