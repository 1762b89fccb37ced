"""Quiet by default: pdekit's commands drop Lightning's advertising banners ("💡 Tip: ... litlogger")
and known third-party deprecation warnings that users can do nothing about.  The filters are
narrow (by message), so any other warning still shows."""
from __future__ import annotations

import logging
import os
import warnings

# (message regex, category, module regex) of warnings raised inside dependencies
KNOWN_WARNINGS = (
    # lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated", Warning, r""),
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_third_party() -> None:
    # jsonargparse's own switch for the deprecations LightningCLI 2.6 triggers in it
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    for message, category, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())
