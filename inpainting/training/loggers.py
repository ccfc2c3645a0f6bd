"""Logger factories whose defaults need a decision at run time, not in yaml."""

from __future__ import annotations

import netrc
import os
from typing import Any

from lightning.pytorch.loggers import WandbLogger


def wandb_credentials_present() -> bool:
    """True when wandb could log in without asking: an API key in the environment or ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(offline: bool | None = None, **kwargs: Any) -> WandbLogger:
    """A WandbLogger that runs offline (``wandb sync`` later) unless the user has configured wandb.

    ``offline=None`` decides automatically; ``WANDB_MODE`` in the environment always wins, as it
    does for wandb itself.
    """
    if offline is None:
        mode = os.environ.get("WANDB_MODE")
        offline = mode in ("offline", "disabled") if mode else not wandb_credentials_present()
    logger = WandbLogger(offline=offline, **kwargs)
    if logger._wandb_init.get("anonymous") is None:
        # Lightning always passes anonymous=None, which wandb >= 0.19 answers with "The anonymous setting has
        # no effect" on every run; an unset key is what wandb expects
        logger._wandb_init.pop("anonymous", None)
    return logger
