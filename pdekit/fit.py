"""`pdekit fit|validate|test|predict`: Lightning's own CLI (LightningCLI + jsonargparse) over
pdekit's tasks and data module, so configs are plain YAML with ``class_path``/``init_args`` and
any key can be overridden on the command line."""
from __future__ import annotations

import sys

import lightning as L
from lightning.pytorch.cli import LightningCLI

from pdekit.datamodule import FieldDataModule

class PdekitCLI(LightningCLI):
    def add_arguments_to_parser(self, parser):
        # the data decides the channel counts and dimension the network is built for
        for attribute in ("in_channels", "out_channels", "dim"):
            parser.link_arguments("data", f"model.init_args.{attribute}",
                                  compute_fn=lambda data, a=attribute: getattr(data, a), apply_on="instantiate")


def check_config_files(argv: list[str]) -> None:
    """Read every ``--config``/``-c`` file with a safe YAML loader first, so a missing file or a
    syntax error is reported in one line naming the file and line (jsonargparse would bury it
    under the full usage text)."""
    import yaml

    from pdekit.tasks import ConfigError

    paths = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--config", "-c")]
    paths += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for path in paths:
        try:
            with open(path) as handle:
                content = yaml.safe_load(handle)
        except FileNotFoundError:
            raise ConfigError(f"no such config file: {path}") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise ConfigError(f"{path} is not valid YAML: {getattr(err, 'problem', None) or err}{where}") from None
        if content is not None and not isinstance(content, dict):
            raise ConfigError(f"{path} must hold a mapping of settings, not a {type(content).__name__}")


def run(argv: list[str]) -> None:
    check_config_files(argv)
    if not any(a.startswith("--weights_only") for a in argv):
        # checkpoints given by --ckpt_path are read with weights_only=True, explicitly
        argv = [argv[0], "--weights_only", "true", *argv[1:]]
    # LightningCLI reads sys.argv (and DDP's launcher re-runs it); it warns if handed args as well
    sys.argv = [sys.argv[0], *argv]

    PdekitCLI(L.LightningModule, FieldDataModule, subclass_mode_model=True, subclass_mode_data=True,
              save_config_kwargs={"overwrite": True},
              # pdekit's samplers shard across ranks themselves (and resume mid-epoch); Lightning
              # must not wrap them in a DistributedSampler
              trainer_defaults={"use_distributed_sampler": False},
              args=None, auto_configure_optimizers=False)
