"""Start-of-fit callbacks whose settings depend on the data: the model summary (with real FLOPs) and the logging
interval. Without them Lightning prints "Total FLOPs: 0" (it counts FLOPs only through ``example_input_array``)
and warns that a small folder has fewer batches per epoch than ``log_every_n_steps``."""

from __future__ import annotations

import logging

import lightning as L
import torch
from lightning.pytorch.callbacks import RichModelSummary

log = logging.getLogger(__name__)


def _image_size(trainer: L.Trainer) -> int | None:
    size = getattr(trainer.datamodule, "image_size", None)
    return int(size) if isinstance(size, int) and size > 0 else None


class ModelSummaryWithFlops(RichModelSummary):
    """Lightning's rich summary, run on one ``image_size`` picture with a centred hole so FLOPs are counted."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        size = _image_size(trainer)
        if size is None or pl_module.example_input_array is not None:
            super().on_fit_start(trainer, pl_module)
            return
        image = torch.zeros(1, 3, size, size)
        mask = torch.zeros(1, 1, size, size)
        mask[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
        pl_module.example_input_array = (image, mask)
        try:
            super().on_fit_start(trainer, pl_module)
        finally:
            pl_module.example_input_array = None  # not kept: loggers would otherwise trace a graph with it


class LogIntervalFromData(L.Callback):
    """Lower ``log_every_n_steps`` to the number of training batches per epoch when an epoch is shorter, so a
    small folder logs steadily (Lightning warns otherwise); a larger dataset keeps the configured interval."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or not trainer.log_every_n_steps:
            return
        batches = len(datamodule.train_dataloader())
        limit = trainer.limit_train_batches
        if isinstance(limit, int):
            batches = min(batches, limit)
        elif isinstance(limit, float) and limit < 1.0:
            batches = int(batches * limit)
        if 0 < batches < trainer.log_every_n_steps:
            log.info(
                "logging every %d steps (one epoch of this data) instead of every %d",
                batches,
                trainer.log_every_n_steps,
            )
            trainer.log_every_n_steps = batches
