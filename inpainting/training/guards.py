"""Callbacks the entry point always adds: what a resumed checkpoint may restore, and finite weights only.

Why: a checkpoint's callback state is data from a file. Lightning's ``ModelCheckpoint`` restores
``best_model_path`` (and, with a matching ``dirpath``, ``best_k_models``, ``kth_best_model_path``,
``last_model_path``) as they are; the run then loads ``best_model_path`` for its test (an URL is fetched) and
removes superseded "best"/"last" files by those names. And a run whose weights turn non-finite (a huge learning
rate) would keep going and save them as ``best``/``last``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from inpainting.errors import ConfigError, UserError

log = logging.getLogger(__name__)

#: ModelCheckpoint state entries that name a file
PATH_KEYS = ("best_model_path", "last_model_path", "kth_best_model_path")


class NonFiniteTrainingError(UserError, FloatingPointError):
    """Training diverged (NaN/inf loss or weights); the message says which options to change."""


def checkpoint_dirs(trainer: L.Trainer) -> list[Path]:
    """The folders this run's ModelCheckpoint callbacks write to (resolved)."""
    return [
        Path(cb.dirpath).resolve()
        for cb in trainer.checkpoint_callbacks
        if isinstance(cb, ModelCheckpoint) and cb.dirpath
    ]


def is_run_checkpoint(path: object, dirs: list[Path]) -> bool:
    """True for an existing local file directly inside one of ``dirs`` (no URL, no other folder)."""
    if not isinstance(path, str | Path) or not str(path) or "://" in str(path):
        return False
    file = Path(path).resolve()
    return file.is_file() and file.parent in dirs


class SafeResumeState(L.Callback):
    """On resume, keep a ModelCheckpoint path from the checkpoint only if it is a file of this run's checkpoint
    dir; anything else (a URL, another run's or any other file) is dropped with a warning, before Lightning
    hands the state to the callbacks."""

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        dirs = checkpoint_dirs(trainer)
        for name, state in (checkpoint.get("callbacks") or {}).items():
            if isinstance(state, dict):
                dropped = sanitize_checkpoint_state(state, dirs)
                if dropped:
                    log.warning(
                        "resume: ignoring %s from the checkpoint's %s state (not a file of this run's "
                        "checkpoint dir %s)",
                        ", ".join(map(repr, dropped)),
                        str(name).split("{")[0],
                        ", ".join(map(str, dirs)) or "-",
                    )


def sanitize_checkpoint_state(state: dict[str, Any], dirs: list[Path]) -> list[str]:
    """Drop (in place) the paths of one callback state that are not files of ``dirs``; return them."""
    dropped: list[str] = []
    best_k = state.get("best_k_models")
    if isinstance(best_k, dict):
        for path in list(best_k):
            if not is_run_checkpoint(path, dirs):
                dropped.append(str(path))
                del best_k[path]
    elif "best_k_models" in state:
        dropped.append(str(best_k))
        state["best_k_models"] = {}
    for key in PATH_KEYS:
        value = state.get(key)
        if value and not is_run_checkpoint(value, dirs):
            dropped.append(str(value))
            state[key] = ""
    if "best_model_path" in state and not state["best_model_path"]:
        state["best_model_score"] = None  # a score without its file would block the next real best
    if state.get("kth_best_model_path") and state["kth_best_model_path"] not in (best_k or {}):
        state["kth_best_model_path"] = ""
    return dropped


class FiniteWeightsGuard(L.Callback):
    """Stop training at the first optimizer step that leaves a NaN/inf weight, before any checkpoint of it.

    Runs before the checkpoint callbacks (Lightning moves those last), so ``last``/``best`` never hold the
    broken weights. One synchronisation per step, cheap next to the step itself (``detect_anomaly`` is not).
    """

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        params = [p.detach() for p in pl_module.parameters()]
        if not params or bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            return
        name = next(n for n, p in pl_module.named_parameters() if not torch.isfinite(p).all())
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        raise NonFiniteTrainingError(
            f"weights became NaN/inf at step {trainer.global_step} (first: {name}; learning rate {lr:g}); "
            "stopped without saving them. Lower optimizer.lr or set trainer.gradient_clip_val"
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A non-finite validation loss means the weights no longer compute anything: stop before the
        checkpoint callbacks would keep them as best/last."""
        loss = trainer.callback_metrics.get("val/loss")
        if trainer.sanity_checking or loss is None or bool(torch.isfinite(loss).all()):
            return
        raise NonFiniteTrainingError(
            f"val/loss is {float(loss)} at step {trainer.global_step}: the weights diverged; stopped without "
            "saving them. Lower optimizer.lr or set trainer.gradient_clip_val"
        )


def check_learning_rates(cfg: DictConfig) -> None:
    """Refuse a NaN, infinite, zero or negative ``lr`` in an optimizer config before anything starts."""
    for key in ("optimizer.lr", "module.d_optimizer.lr"):
        lr = OmegaConf.select(cfg, key, default=None)
        if lr is None:
            continue
        try:
            value = float(lr)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{key} must be a finite positive number (e.g. {key}=2e-4), got {lr!r}")
