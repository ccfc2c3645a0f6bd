"""Small helpers between Hydra configs and Lightning objects, shared by the entry points."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import rich.syntax
import rich.tree
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PRINT_ORDER = (
    "data",
    "mask",
    "model",
    "loss",
    "optimizer",
    "scheduler",
    "module",
    "trainer",
    "callbacks",
    "logger",
)


def instantiate_dict(cfg: DictConfig | None, kind: str) -> list:
    """Instantiate every ``_target_`` entry of a name -> config mapping (the callbacks/logger groups)."""
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"{kind} config must be a mapping of name -> config, got {type(cfg).__name__}")
    objects = []
    for name, node in cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            log.info("Instantiating %s <%s> (%s)", kind, node._target_, name)
            objects.append(instantiate(node))
    return objects


def instantiate_callbacks(cfg: DictConfig | None, has_logger: bool) -> list[L.Callback]:
    """Callbacks from config; LearningRateMonitor is dropped when no logger could receive it."""
    callbacks = instantiate_dict(cfg, "callback")
    if not has_logger:
        kept = [cb for cb in callbacks if not isinstance(cb, L.pytorch.callbacks.LearningRateMonitor)]
        if len(kept) != len(callbacks):
            log.info("No logger configured: LearningRateMonitor disabled")
        callbacks = kept
    return callbacks


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    return instantiate_dict(cfg, "logger")


def print_config_tree(
    cfg: DictConfig, save_to: Path | None = None, order: Sequence[str] = PRINT_ORDER
) -> None:
    """Print the composed config as a rich tree (and save it), so every run shows what it ran."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=False) if isinstance(node, DictConfig) else str(node)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        with open(save_to, "w") as file:
            rich.print(tree, file=file)


# Mistakes in configuration or input (bad option, missing file, unreadable image, missing extra package).
USER_ERRORS = (InstantiationException, ValueError, OSError, ImportError)


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """In an entry point: report a configuration/input mistake as one clear line and exit 1 instead of a
    deep stack trace; ``HYDRA_FULL_ERROR=1`` re-raises it with the traceback."""
    try:
        yield
    except USER_ERRORS as error:
        log.error("%s: %s", type(error).__name__, error)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("Set HYDRA_FULL_ERROR=1 to see the full traceback.")
        sys.exit(1)
