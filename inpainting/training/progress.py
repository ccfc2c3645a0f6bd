"""Progress of a training run that a person can follow: the rich bar in a terminal, log lines everywhere.

Outside a terminal (SLURM, nohup, CI) a live bar prints nothing useful until it stops, and then one frozen line;
:class:`TrainProgressLog` instead logs one compact line per validation through :mod:`logging`, so it reaches the
console and Hydra's ``train.log`` alike. :class:`StepProgressBar` is the bar for a terminal only, and counts steps
when the run is measured in steps (Lightning's own bar prints ``Epoch 299/-2`` for ``max_epochs=-1``).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities import rank_zero_only

from inpainting.training.cpu_budget import CpuBudget

log = logging.getLogger(__name__)


def is_terminal() -> bool:
    """True when stdout is a terminal a live progress bar can redraw (not a file, pipe or batch job's log)."""
    return sys.stdout.isatty()


def clock(seconds: float) -> str:
    """``95`` -> ``1m35s``; ``4000`` -> ``1h06m40s``; unknown -> ``?``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _metric(trainer: L.Trainer, key: str) -> float | None:
    value = trainer.callback_metrics.get(key)
    return None if value is None else float(value)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def budget_time_left(trainer: L.Trainer, elapsed: float) -> float:
    """Wall seconds until a budget (``callbacks.cpu_budget``) ends the run: the wall budget's rest, or the CPU
    budget's rest at this process's CPU-per-wall rate, whichever is sooner (nan: no budget)."""
    budget = next((c for c in trainer.callbacks if isinstance(c, CpuBudget)), None)
    if budget is None:
        return math.nan
    left = []
    if budget.max_wall_seconds is not None:
        left.append(max(budget.max_wall_seconds - budget.clock.wall_seconds(), 0.0))
    used_here = budget.clock.cpu_seconds() - budget.clock.cpu_before
    if budget.max_cpu_seconds is not None and used_here > 0 and elapsed > 0:
        left.append(max(budget.max_cpu_seconds - budget.clock.cpu_seconds(), 0.0) * elapsed / used_here)
    return min(left, default=math.nan)


def step_based(trainer: L.Trainer) -> bool:
    """The run is measured in optimizer steps (``max_steps`` set, no epoch limit): epochs mean nothing to show."""
    return trainer.max_steps > 0 and (trainer.max_epochs is None or trainer.max_epochs < 0)


def validating_before_fit(trainer: L.Trainer) -> bool:
    """True in train's ``validate_first`` pass: ``trainer.validate`` before any step, the curve's step 0."""
    return trainer.state.fn == "validate" and trainer.global_step == 0


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar, shown only in a terminal (``only_in_terminal``), reading ``step N/max_steps``
    instead of ``Epoch 299/-2`` for a run measured in steps. Disabled, it stays the trainer's progress bar, so
    Lightning adds no tqdm bar in its place."""

    def __init__(self, only_in_terminal: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if only_in_terminal and not is_terminal():
            self.disable()

    def _get_train_description(self, current_epoch: int) -> str:
        if not step_based(self.trainer):
            return super()._get_train_description(current_epoch)
        width = len(str(self.trainer.max_steps))
        return f"step {self.trainer.global_step:>{width}}/{self.trainer.max_steps}"

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        # Lightning sets the description once per epoch: keep the step count current
        if self.progress is not None and self.train_progress_bar_id is not None and step_based(trainer):
            description = self._get_train_description(trainer.current_epoch)
            self.progress.update(self.train_progress_bar_id, description=description)


class TrainProgressLog(L.Callback):
    """One log line per validation and a summary after fit and after test, e.g.
    ``step 200/300 | loss 0.412 | val psnr 26.49 ssim 0.912 | 14.2 img/s | 3m10s elapsed, 1m35s left``.

    Images/s is training images (all devices) over wall time since fit started, validation included; the time
    left is the steps still to do at the step rate measured so far, or, when a budget (``callbacks.cpu_budget``)
    ends the run sooner, the wall budget's rest or the CPU-seconds still to spend at the CPU-per-wall-second rate
    measured so far."""

    def __init__(
        self, loss_key: str = "train/loss", val_prefix: str = "val", test_prefix: str = "test"
    ) -> None:
        self.loss_key, self.val_prefix, self.test_prefix = loss_key, val_prefix, test_prefix
        self.start = 0.0
        self.first_step = 0
        self.images = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        self.first_step = trainer.global_step  # a resumed run: the rate counts this run's steps only
        self.images = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        image = batch.get("image") if isinstance(batch, dict) else None
        self.images += (int(image.shape[0]) if image is not None else 0) * trainer.world_size

    def _steps(self, trainer: L.Trainer) -> str:
        total = trainer.max_steps if trainer.max_steps > 0 else None
        return f"step {trainer.global_step}/{total}" if total else f"step {trainer.global_step}"

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if validating_before_fit(trainer):
            psnr, ssim = (_metric(trainer, f"{self.val_prefix}/{k}") for k in ("psnr", "ssim"))
            log.info("step 0, before training | val psnr %s ssim %s", _fmt(psnr, 2), _fmt(ssim, 3))
            return
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        elapsed = time.perf_counter() - self.start
        done = trainer.global_step - self.first_step
        left = math.nan
        if trainer.max_steps > 0 and done > 0:
            left = (trainer.max_steps - trainer.global_step) * elapsed / done
        left = min(
            left, budget_time_left(trainer, elapsed), key=lambda t: t if math.isfinite(t) else math.inf
        )
        psnr = _metric(trainer, f"{self.val_prefix}/psnr")
        ssim = _metric(trainer, f"{self.val_prefix}/ssim")
        log.info(
            "%s | loss %s | val psnr %s ssim %s | %.1f img/s | %s elapsed, %s left",
            self._steps(trainer),
            _fmt(_metric(trainer, self.loss_key), 3),
            _fmt(psnr, 2),
            _fmt(ssim, 3),
            self.images / max(elapsed, 1e-9),
            clock(elapsed),
            clock(left),
        )

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        line = f"fit done: {self._steps(trainer)} in {clock(time.perf_counter() - self.start)}"
        best = trainer.checkpoint_callback
        score = getattr(best, "best_model_score", None)
        if score is not None and getattr(best, "best_model_path", ""):
            line += f" | best {best.monitor} {float(score):.3f} ({Path(best.best_model_path).name})"
        log.info(line)

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        psnr = _metric(trainer, f"{self.test_prefix}/psnr")
        ssim = _metric(trainer, f"{self.test_prefix}/ssim")
        log.info("test psnr %s ssim %s", _fmt(psnr, 2), _fmt(ssim, 3))
