"""The one base of every training task: a model family is its network and its loss.

:class:`Task` holds what every family shares: set-up from the attached data module (checks
declared as class attributes, the data signature, grid and level names), the record pdekit adds to
each checkpoint, the training/validation/test steps around the family's loss, and the optimizer and
learning-rate schedule, chosen in YAML::

    model:
      class_path: pdekit.learning.tasks.OperatorLearning
      init_args:
        optimizer: {name: AdamW, lr: 0.003, weight_decay: 0.0}
        lr_scheduler: {name: StepLR, step_size: 10, gamma: 0.5}

``name`` is a class of :mod:`torch.optim` (optimizers) or :mod:`torch.optim.lr_scheduler`
(schedules); the other keys are its arguments.  Nothing but those two modules' classes is ever
built, and the names are looked up, not imported (a ``class_path`` would make the config parser
import the module a file names).  Without ``optimizer`` a family keeps its own default (its ``lr``
and ``weight_decay`` arguments); ``lr_scheduler: none`` turns its default schedule off.  A schedule
also takes ``interval`` (``epoch`` | ``step``), ``monitor`` and ``frequency`` (Lightning's);
``T_max`` of ``CosineAnnealingLR`` and ``total_steps`` / ``max_lr`` of ``OneCycleLR`` default to the
run's length and the optimizer's learning rate.
"""
from __future__ import annotations

import inspect
import math
import time

import lightning as L
import torch

from pdekit.errors import ConfigError, NonFiniteError
from pdekit.learning.registry import check_plain


def attached_datamodule(module: L.LightningModule):
    """The data module of the trainer ``module`` is attached to, or None."""
    return getattr(module.trainer, "datamodule", None) if module._trainer is not None else None


def checkpoint_record(module: L.LightningModule, data_signature: dict | None, **extra) -> dict:
    """What pdekit adds to every checkpoint (read back by :func:`pdekit.learning.checkpoints.load_task`):
    the task's class path, its hyperparameters and the data it was trained on."""
    cls = type(module)
    return {"task": f"{cls.__module__}.{cls.__qualname__}", "hparams": dict(module.hparams),
            "data": data_signature, **extra}


def check_learning_rate(lr, weight_decay=0.0) -> None:
    """Refuse a learning rate (or weight decay) that cannot train: negative, zero, NaN or infinite."""
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"model.init_args.lr must be a positive finite number, got {lr}")
    if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay) and weight_decay >= 0):
        raise ConfigError(f"model.init_args.weight_decay must be a non-negative finite number, got {weight_decay}")


def _torch_class(name, module, base, key: str):
    """The class ``name`` of ``module`` (a name, or its full ``torch.optim...`` path); nothing else."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{key}.name must be a class name of {module.__name__}, got {name!r}")
    short = name.removeprefix(module.__name__ + ".")
    cls = getattr(module, short, None) if "." not in short else None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{key}.name {name!r} is not a class of {module.__name__}")
    return cls


SCHEDULE_KEYS = ("interval", "monitor", "frequency")  # Lightning's, beside the schedule's own arguments


def _split(spec: dict, schedule: bool) -> tuple[str, dict, dict]:
    """(class name, its arguments, Lightning's schedule keys) of an ``optimizer`` / ``lr_scheduler``."""
    lightning = {k: spec[k] for k in SCHEDULE_KEYS if schedule and k in spec}
    args = {k: v for k, v in spec.items() if k != "name" and k not in lightning}
    return spec.get("name"), args, lightning


def _check_spec(spec, key: str, module, base, schedule: bool) -> None:
    if spec is None or (schedule and spec == "none"):
        return
    if not isinstance(spec, dict):
        raise ConfigError(f"{key} must be a mapping with a name (and the class's arguments)"
                          f"{' or none' if schedule else ''}, got {spec!r}")
    check_plain(spec, key)
    name, args, lightning = _split(spec, schedule)
    cls = _torch_class(name, module, base, key)
    accepted = inspect.signature(cls).parameters
    unknown = set(args) - (set(accepted) - {"params", "optimizer"})  # those two pdekit passes itself
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        raise ConfigError(f"{key}: {cls.__name__} takes no argument(s) {sorted(unknown)}")
    if lightning.get("interval", "epoch") not in ("epoch", "step"):
        raise ConfigError(f"{key}.interval must be 'epoch' or 'step', got {lightning['interval']!r}")


class Task(L.LightningModule):
    """Base of pdekit's training tasks.  A family declares its data needs as class attributes,
    implements :meth:`training_loss` (a loss tensor, or a dict with ``loss`` and other terms to log)
    and, where it logs more than the loss on held-out data, :meth:`evaluate`.

    Declared data checks (:meth:`check_data`, run by ``pdekit fit`` before anything is written and
    again at set-up): ``data_source`` (``files``: pdekit dataset files; ``problem``: an analytic
    problem), ``data_pde`` (e.g. ``"poisson"``), ``data_timeseries`` (True/False, None: either) and
    ``data_system`` (each sample's operator must be read: ``data.init_args.system: true``).
    """

    data_source = "files"
    data_pde: str | None = None
    data_timeseries: bool | None = None
    data_system = False
    default_optimizer = "Adam"

    def __init__(self, optimizer: dict | None = None, lr_scheduler: dict | str | None = None):
        super().__init__()
        _check_spec(optimizer, "model.init_args.optimizer", torch.optim, torch.optim.Optimizer, False)
        _check_spec(lr_scheduler, "model.init_args.lr_scheduler", torch.optim.lr_scheduler,
                    (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau), True)
        self.data_signature: dict | None = None
        self.grid = None
        self.levels: list[str] = []
        self._last_batch_start = None

    # -- data ------------------------------------------------------------------------------
    def check_data(self, datamodule) -> None:
        """Refuse data this task cannot learn from, in one line naming what to change."""
        name = type(self).__name__
        holds_problem = hasattr(datamodule, "problem") and not hasattr(datamodule, "timeseries")
        if self.data_source == "files" and holds_problem:
            raise ConfigError(f"{name} learns from dataset files (pdekit.learning.datamodules.FieldDataModule); the data "
                              f"module holds the analytic problem {datamodule.problem.name!r} (for it use "
                              "models.fkpinn.FKPINN or models.gp_hm.task.GPHM)")
        if self.data_source == "problem":
            if not hasattr(datamodule, "problem"):
                raise ConfigError(f"{name} learns an analytic problem: use "
                                  "pdekit.learning.datamodules.ProblemDataModule (data.init_args.problem), not dataset files")
            return
        if self.data_timeseries is not None and bool(datamodule.timeseries) != self.data_timeseries:
            want = "time-series" if self.data_timeseries else "static (Poisson)"
            other = "pdekit.learning.tasks.OperatorLearning" if self.data_timeseries else \
                "pdekit.learning.tasks.Autoregressive"
            raise ConfigError(f"{name} needs {want} data; the data module holds pde={datamodule.pde!r} files "
                              f"(use {other})")
        if self.data_pde is not None and (datamodule.timeseries or datamodule.pde != self.data_pde):
            raise ConfigError(f"{name} learns {self.data_pde.capitalize()} problems; the data module holds "
                              f"pde={datamodule.pde!r} files")
        if self.data_system and not datamodule.system:
            raise ConfigError(f"{name} reads each sample's system: set data.init_args.system: true")
        if getattr(datamodule, "sources", None) and not self.label_free:
            raise ConfigError(f"data.init_args.sources draws training sources whose solutions are unknown, and {name} "
                              "learns from labels: use a label-free task (models.npsolver.NPSolver, loss pcg, "
                              "residual or mixed)")
        wanted_dim = self.hparams.get("dim") if self.data_system else None
        if wanted_dim is not None and datamodule.dim != wanted_dim:
            raise ConfigError(f"model.init_args.dim is {wanted_dim} but the data is {datamodule.dim}-D")

    @property
    def label_free(self) -> bool:
        """Whether training never reads the labels (then the data may draw sources with unknown solutions)."""
        return False

    def setup(self, stage=None):
        datamodule = attached_datamodule(self)
        if datamodule is None:
            return
        self.check_data(datamodule)
        self.data_signature = datamodule.signature()
        self.levels = list(getattr(datamodule, "levels", None) or [])
        if self.data_source == "files":
            self.grid = datamodule.grid()
        self.take_data(datamodule)

    def take_data(self, datamodule) -> None:
        """What a family takes from its data at set-up besides the signature (statistics, labels)."""

    def batch_operator(self, batch):
        """The :class:`~pdekit.operators.DiffusionOperator` of a batch read with
        ``data.init_args.system: true``, each sample on its own grid."""
        from pdekit.files.dataset import batch_grids
        from pdekit.operators import DiffusionOperator

        if "bc_type" not in batch:
            raise ConfigError(f"{type(self).__name__} needs each sample's system: set data.init_args.system: true")
        return DiffusionOperator.from_arrays(batch_grids(batch, self.grid), batch["a"], batch["bc_type"],
                                             batch["bc_value"])

    # -- checkpoints -----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["pdekit"] = checkpoint_record(self, self.data_signature, **self.checkpoint_extra())

    def checkpoint_extra(self) -> dict:
        """Entries a family adds to the checkpoint's pdekit record."""
        return {}

    # -- steps -----------------------------------------------------------------------------
    def training_loss(self, batch) -> torch.Tensor | dict:
        raise NotImplementedError(f"{type(self).__name__} defines no training_loss")

    @staticmethod
    def batch_size(batch) -> int:
        if isinstance(batch, dict):
            for value in batch.values():
                if isinstance(value, torch.Tensor) and value.ndim:
                    return int(value.shape[0])
        return 1

    def non_finite_hint(self) -> str:
        return "lower model.init_args.lr"

    def _terms(self, batch) -> dict:
        terms = self.training_loss(batch)
        return terms if isinstance(terms, dict) else {"loss": terms}

    def training_step(self, batch, batch_idx):
        terms = self._terms(batch)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteError(f"{type(self).__name__}: the training loss became {float(loss)} at step "
                                 f"{self.global_step}; {self.non_finite_hint()}")
        size = self.batch_size(batch)
        for name, value in terms.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=size)
        if self.data_source == "files":
            now = time.perf_counter()
            if self._last_batch_start is not None:
                self.log("train/samples_per_s", size / (now - self._last_batch_start), batch_size=size)
            self._last_batch_start = now
        return loss

    def on_train_epoch_start(self):
        self._last_batch_start = None

    def log_per_level(self, prefix: str, per_sample: dict, levels: torch.Tensor, size: int) -> None:
        """Log each per-sample metric's batch mean, overall and per difficulty level (``self.levels``
        names the codes)."""
        for name, values in per_sample.items():
            self.log(f"{prefix}/{name}", values.mean(), batch_size=size, sync_dist=True, prog_bar=name == "rel_l2")
            for code in levels.unique().tolist():
                chosen = levels == code
                self.log(f"{prefix}/{name}/{self.levels[code]}", values[chosen].mean(),
                         batch_size=int(chosen.sum()), sync_dist=True)

    def evaluate(self, batch, prefix: str) -> None:
        """Held-out metrics of a batch (default: the training loss)."""
        self.log(f"{prefix}/loss", self._terms(batch)["loss"], prog_bar=prefix == "val",
                 batch_size=self.batch_size(batch), sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self.evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self.evaluate(batch, "test")

    # -- optimisation ----------------------------------------------------------------------
    def default_optimizer_args(self) -> dict:
        args = {"lr": self.hparams.lr}
        if "weight_decay" in self.hparams:
            args["weight_decay"] = self.hparams.weight_decay
        return args

    def default_lr_scheduler(self, optimizer):
        """The family's schedule when the config names none (a Lightning scheduler dict or None)."""
        return None

    def run_length(self, interval: str) -> int:
        """Epochs (or optimizer steps) this run will take; 100 epochs where the trainer sets no limit."""
        if interval == "step":
            return max(1, int(self.trainer.estimated_stepping_batches))
        epochs = self.trainer.max_epochs
        return epochs if epochs and epochs > 0 else 100

    def configure_optimizers(self):
        spec = self.hparams.get("optimizer")
        if spec is None:
            cls, args = getattr(torch.optim, self.default_optimizer), self.default_optimizer_args()
        else:
            name, args, _ = _split(spec, schedule=False)
            cls = _torch_class(name, torch.optim, torch.optim.Optimizer, "model.init_args.optimizer")
            args = {"lr": self.hparams.lr, **args} if "lr" in self.hparams else args
        optimizer = cls(self.parameters(), **args)
        schedule = self.hparams.get("lr_scheduler")
        if schedule == "none":
            return optimizer
        if schedule is None:
            default = self.default_lr_scheduler(optimizer)
            return optimizer if default is None else {"optimizer": optimizer, "lr_scheduler": default}
        name, args, lightning = _split(schedule, schedule=True)
        cls = _torch_class(name, torch.optim.lr_scheduler, object, "model.init_args.lr_scheduler")
        interval = lightning.get("interval", "epoch")
        if cls is torch.optim.lr_scheduler.CosineAnnealingLR:
            args.setdefault("T_max", self.run_length(interval))
        if cls is torch.optim.lr_scheduler.OneCycleLR:
            args.setdefault("total_steps", self.run_length("step"))
            args.setdefault("max_lr", optimizer.param_groups[0]["lr"])
            interval = "step"
        try:
            scheduler = cls(optimizer, **args)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"model.init_args.lr_scheduler: {str(err).splitlines()[0]}") from None
        entry = {"scheduler": scheduler, "interval": interval}
        entry.update({key: lightning[key] for key in ("monitor", "frequency") if key in lightning})
        return {"optimizer": optimizer, "lr_scheduler": entry}
