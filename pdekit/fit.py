"""`pdekit fit|validate|test|predict`: Lightning's own CLI (LightningCLI + jsonargparse) over
pdekit's tasks and data module, so configs are plain YAML with ``class_path``/``init_args`` and
any key can be overridden on the command line.

pdekit's changes to LightningCLI: a checkpoint given by ``--ckpt_path`` supplies weights only
(LightningCLI would also take the model's hyperparameters, class path included, from it) and is
checked before training starts; the model's class path must be allow-listed
(:mod:`pdekit.registry`); a parse error is one line naming the bad key; ``predict`` writes an
HDF5 file (:mod:`pdekit.predict`).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import LightningCLI

from pdekit.errors import ConfigError

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
        parser.add_argument("--predictions", default=None,
                            help="predict: the HDF5 file to write (default: <trainer.default_root_dir>/predictions.h5)")

    def _parse_ckpt_path(self):
        """Lightning would take the model's hyperparameters (and class path) from the checkpoint:
        a checkpoint must never decide what code runs, so the config alone defines the model."""

    def before_instantiate_classes(self):
        from pdekit.registry import load_class

        config = self.config[self.config.subcommand] if self.config.get("subcommand") else self.config
        load_class(config.model.class_path, L.LightningModule, "model")
        if config.get("data") is not None and getattr(config.data, "class_path", None):
            load_class(config.data.class_path, L.LightningDataModule, "data")

    def _run_subcommand(self, subcommand):
        ckpt = self.config_init[subcommand].get("ckpt_path")
        if ckpt and ckpt not in LIGHTNING_CKPT_ALIASES:
            check_resume_checkpoint(ckpt, self.model)
        if hasattr(self.model, "check_data") and self.datamodule is not None:
            self.model.check_data(self.datamodule)  # before Lightning writes config.yaml and logs
        if subcommand == "predict":
            from pdekit.predict import PredictionWriter

            path = self.config_init[subcommand].get("predictions") or \
                Path(self.trainer.default_root_dir) / "predictions.h5"
            self.trainer.callbacks.append(PredictionWriter(path))
        super()._run_subcommand(subcommand)


def check_resume_checkpoint(path, model) -> None:
    """Refuse, in one line and before any work, a ``--ckpt_path`` that is missing, pickled,
    truncated, or holds another model's weights."""
    from pdekit.checkpoints import CheckpointError, read_weights_only

    checkpoint = read_weights_only(path)
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no model weights (not a Lightning training checkpoint)")
    record = checkpoint.get("pdekit") if isinstance(checkpoint.get("pdekit"), dict) else {}
    cls = type(model)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if record.get("task") not in (None, name):
        raise CheckpointError(f"{path} holds a {record['task']} model; the config builds a {name}")
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    mismatched = [k for k, v in model.state_dict().items()
                  if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or mismatched:
        what = (f"missing {sorted(missing)[:3]}" if missing else f"unexpected {sorted(unexpected)[:3]}" if unexpected
                else f"shape of {mismatched[:3]} differs")
        raise CheckpointError(f"{path}: its weights do not fit the configured model ({what})")


def check_config_files(argv: list[str]) -> None:
    """Read every ``--config``/``-c`` file with a safe YAML loader first, so a missing file or a
    syntax error is reported in one line naming the file and line (jsonargparse would bury it
    under the full usage text)."""
    import yaml

    from pdekit.errors import yaml_problem

    paths = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--config", "-c")]
    paths += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for path in paths:
        if Path(path).is_dir():
            raise ConfigError(f"config {path} is a folder, not a YAML file")
        try:
            with open(path) as handle:
                content = yaml.safe_load(handle)
        except FileNotFoundError:
            raise ConfigError(f"no such config file: {path}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read config {path}: {getattr(err, 'strerror', None) or err}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {yaml_problem(err)}") from None
        if content is not None and not isinstance(content, dict):
            raise ConfigError(f"{path} must hold a mapping of settings, not a {type(content).__name__}")


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
    check_config_files(argv)
    if not any(a.startswith("--weights_only") for a in argv):
        # checkpoints given by --ckpt_path are read with weights_only=True, explicitly
        argv = [argv[0], "--weights_only", "true", *argv[1:]]
    # LightningCLI reads sys.argv (and DDP's launcher re-runs it); it warns if handed args as well
    sys.argv = [sys.argv[0], *argv]

    PdekitCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
              save_config_kwargs={"overwrite": True},
              # pdekit's samplers shard across ranks themselves (and resume mid-epoch); Lightning
              # must not wrap them in a DistributedSampler
              trainer_defaults={"use_distributed_sampler": False},
              args=None, auto_configure_optimizers=False)
