"""Lightning objects from the config groups that hold a name -> config mapping, and the check of unset options."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from inpainting.errors import ConfigError

if TYPE_CHECKING:  # Lightning is imported where it is used: predict/export/demo start without it
    import lightning as L
    from lightning.pytorch.loggers import Logger

log = logging.getLogger(__name__)


def instantiate_dict(cfg: DictConfig | None, kind: str) -> list:
    """Instantiate every ``_target_`` entry of a name -> config mapping (the callbacks/logger groups)."""
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"{kind} config must be a mapping of name -> config, got {type(cfg).__name__}")
    objects = []
    for name, node in cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            log.debug("Instantiating %s <%s> (%s)", kind, node._target_, name)
            objects.append(instantiate(node))
    return objects


def instantiate_callbacks(cfg: DictConfig | None, has_logger: bool) -> list[L.Callback]:
    """Callbacks from config; LearningRateMonitor is dropped when no logger could receive it."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    callbacks = instantiate_dict(cfg, "callback")
    if not has_logger:
        kept = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
        if len(kept) != len(callbacks):
            log.info("No logger configured: LearningRateMonitor disabled")
        callbacks = kept
    return callbacks


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    return instantiate_dict(cfg, "logger")


def check_required(cfg: DictConfig) -> None:
    """Refuse a config with an unset ``???`` option before anything starts, naming the option itself
    (``mask.root``; OmegaConf would name the interpolation that reached it, ``data.mask_generator.root``)."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        example = " ".join(f"{key}=..." for key in missing)
        raise ConfigError(f"{', '.join(missing)} must be set: give it on the command line ({example})")
