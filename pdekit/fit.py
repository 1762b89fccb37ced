"""`pdekit fit|validate|test|predict`: Lightning's own CLI (LightningCLI + jsonargparse) over
pdekit's tasks and data module, so configs are plain YAML with ``class_path``/``init_args`` and
any key can be overridden on the command line."""
from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from pdekit.datamodule import FieldDataModule

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class PdekitCLI(LightningCLI):
    def add_arguments_to_parser(self, parser):
        # the data decides the channel counts and dimension the network is built for
        for attribute in ("in_channels", "out_channels", "dim"):
            parser.link_arguments("data", f"model.init_args.{attribute}",
                                  compute_fn=lambda data, a=attribute: getattr(data, a), apply_on="instantiate")


def run(argv: list[str]) -> None:
    import sys

    import lightning as L

    PdekitCLI(L.LightningModule, FieldDataModule, subclass_mode_model=True, subclass_mode_data=True,
              save_config_kwargs={"overwrite": True},
              # pdekit's samplers shard across ranks themselves (and resume mid-epoch); Lightning
              # must not wrap them in a DistributedSampler
              trainer_defaults={"use_distributed_sampler": False},
              args=None if argv == sys.argv[1:] else argv, auto_configure_optimizers=False)
