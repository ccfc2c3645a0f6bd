"""The LightningModule: one generator, its losses, optimizer, scheduler and validation metrics.

It owns the batch contract (docs/architecture.md): the generator sees ``image * (1 - mask)`` and the mask,
and everything judged (loss terms on the seam, metrics, pictures) uses the composite
``out * mask + image * (1 - mask)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from inpainting.evaluation.metrics import BucketedImageMetrics
from inpainting.training.generator_step import frames_as_images, generate, reconstruction_terms
from inpainting.training.guards import NonFiniteTrainingError
from inpainting.training.panels import to_unit_range

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class InpaintingModule(L.LightningModule):
    """Trains ``net(masked_image, mask) -> image`` with a reconstruction loss.

    ``optimizer`` and ``scheduler`` are partial constructors (Hydra ``_partial_: true``) so the
    config chooses them without the module knowing their classes.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "step",
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__()
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}")
        if max_nonfinite_steps < 1:
            raise ValueError(f"max_nonfinite_steps must be a positive integer, got {max_nonfinite_steps}")
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # PSNR/SSIM overall and per hole-area bucket (val/psnr_10-20, ...), the evaluator's definitions
        self.val_metrics = BucketedImageMetrics()
        self.test_metrics = BucketedImageMetrics()
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0

    def forward(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Return the raw generator output and the composite with the known pixels pasted back."""
        step = generate(self.net, image, mask)
        return step.output, step.composite

    def _shared_step(self, batch: dict[str, Any]) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        step = generate(self.net, batch["image"], batch["mask"])
        terms = reconstruction_terms(self.loss, step, batch["image"], batch["mask"])
        return terms, step.output, step.composite

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor] | None:
        terms, output, composite = self._shared_step(batch)
        batch_size = batch["image"].shape[0]
        if not torch.isfinite(terms["total"]):
            return self._skip_nonfinite_step(terms)
        self.nonfinite_in_a_row = 0
        self.log_dict({f"train/{k}": v for k, v in terms.items() if k != "total"}, batch_size=batch_size)
        self.log("train/loss", terms["total"], prog_bar=True, batch_size=batch_size)
        return {"loss": terms["total"], "output": output.detach(), "composite": composite.detach()}

    def _skip_nonfinite_step(self, terms: dict[str, Tensor]) -> None:
        """Skip an optimizer step whose loss is NaN/inf (returning None makes Lightning skip it);
        stop with a clear message once ``max_nonfinite_steps`` happen in a row."""
        self.nonfinite_in_a_row += 1
        self.nonfinite_total += 1
        # detached: the loss terms carry the graph, and float() of such a tensor warns (requires_grad)
        bad = {k: float(v.detach()) for k, v in terms.items() if not torch.isfinite(v)}
        log.warning(
            "non-finite loss at step %d (%s): step skipped (%d in a row, %d in total)",
            self.global_step,
            bad,
            self.nonfinite_in_a_row,
            self.nonfinite_total,
        )
        if self.nonfinite_in_a_row >= self.hparams.max_nonfinite_steps:
            raise NonFiniteTrainingError(
                f"{self.nonfinite_in_a_row} non-finite losses in a row (last: {bad}); stopping. "
                "Lower optimizer.lr, enable trainer.gradient_clip_val, or check the data; "
                "raise module.max_nonfinite_steps to tolerate more."
            )
        return None

    def _evaluation_step(
        self, batch: dict[str, Any], stage: str, metrics: BucketedImageMetrics
    ) -> dict[str, Tensor]:
        terms, output, composite = self._shared_step(batch)
        metrics.update(
            *(
                frames_as_images(t)
                for t in (to_unit_range(composite), to_unit_range(batch["image"]), batch["mask"])
            )
        )
        self.log(f"{stage}/loss", terms["total"], batch_size=batch["image"].shape[0], sync_dist=True)
        return {"output": output, "composite": composite}

    def _log_epoch_metrics(self, stage: str, metrics: BucketedImageMetrics) -> None:
        values = metrics.compute()  # already synced across DDP ranks
        headline = {"psnr", "ssim"}
        self.log_dict(
            {f"{stage}/{k}": v for k, v in values.items() if k in headline}, prog_bar=stage == "val"
        )
        self.log_dict({f"{stage}/{k}": v for k, v in values.items() if k not in headline})
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test", self.test_metrics)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluation_step(batch, "val", self.val_metrics)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluation_step(batch, "test", self.test_metrics)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self(batch["image"], batch["mask"])[1]

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(params=self.net.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.hparams.scheduler_interval},
        }
