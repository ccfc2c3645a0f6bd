"""Lightning callbacks that no library provides: picture panels sent to every logger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from inpainting.inference.checkpoint import CONFIG_KEY, WANDB_ID_KEY
from inpainting.training.panels import PANEL_COLUMNS, inpainting_panel


class ImagePanelLogger(L.Callback):
    """Every ``every_n_steps`` training steps, and on the first validation batch of each validation
    run, save a panel (masked input | output | composite | ground truth) as PNG and send it to the
    wandb / TensorBoard loggers that are attached. CSV-only runs still get the PNG files."""

    def __init__(self, dirpath: str, every_n_steps: int = 100, max_rows: int = 4) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps}")
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.max_rows = max_rows

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if (
            trainer.global_step % self.every_n_steps == 0
            and isinstance(outputs, dict)
            and "output" in outputs
        ):
            self._emit(trainer, "train", batch, outputs)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and not trainer.sanity_checking and isinstance(outputs, dict):
            self._emit(trainer, "val", batch, outputs)

    @rank_zero_only
    def _emit(self, trainer: L.Trainer, stage: str, batch: dict[str, Any], outputs: dict[str, Any]) -> None:
        panel = inpainting_panel(
            batch["image"], batch["mask"], outputs["output"], outputs["composite"], self.max_rows
        )
        step = trainer.global_step
        self.dirpath.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(self.dirpath / f"{stage}_step{step:07d}.png"), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
        caption = " | ".join(PANEL_COLUMNS)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=f"{stage}/panel", images=[panel], caption=[caption], step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(
                    f"{stage}/panel", np.ascontiguousarray(panel), step, dataformats="HWC"
                )


class AttentionGateLogger(L.Callback):
    """Logs each attention block's residual gate ``gamma`` as ``attention/gate_<block>`` every training step
    that Lightning logs, so "does the network use its attention?" is a curve, not a guess. Nets without
    attention log nothing."""

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        blocks = getattr(getattr(pl_module, "net", None), "attn", None)
        if not blocks:
            return
        for name, block in blocks.items():
            pl_module.log(f"attention/gate_{name}", block.gamma.detach().abs(), on_step=True, on_epoch=False)


class RunConfigInCheckpoints(L.Callback):
    """Puts the run's resolved config (plain data) and its wandb run id into every checkpoint.

    ``CONFIG_KEY`` is what export/predict/evaluate rebuild the network from without unpickling objects;
    ``WANDB_ID_KEY`` lets a resumed run continue the same wandb run (both: :mod:`inpainting.inference.checkpoint`). The entry point adds this callback
    with the config it composed, so the LightningModule never holds the run's config.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                checkpoint[WANDB_ID_KEY] = logger.version
