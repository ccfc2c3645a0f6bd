"""A training run's learning curve in its run dir: ``curve.csv`` (one row per validation) and ``curve.png``.

metrics.csv (the CSV logger) holds every logged value at its own step, in a layout that changes with the logged
keys and is absent under wandb; ``curve.csv`` is one fixed set of columns per validation, whatever the logger,
which is what ``python -m inpainting.summarize`` compares across a sweep's jobs. ``cpu_seconds`` is
:func:`time.process_time` since fit started: every thread of the training process, not data-loader workers
(see :mod:`inpainting.training.cpu_budget`); across a resume both clocks continue from the checkpoint.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from inpainting.training.cpu_budget import CpuClock
from inpainting.training.progress import validating_before_fit
from inpainting.training.sweep_summary import (
    COLUMNS,
    CURVE_CSV,
    CURVE_PNG,
    curve_cells,
    plot_curve,
    read_curve,
    write_curve,
)

log = logging.getLogger(__name__)


class LearningCurve(L.Callback):
    """Append one row to ``<dirpath>/curve.csv`` after every validation of fit (and the one before it, train's
    ``validate_first``: step 0) and redraw ``curve.png``.

    Columns: step, wall_seconds and cpu_seconds since fit started (continued across a resume), train_loss (the
    last logged ``train/loss``), val_psnr, val_ssim, lr (the first optimizer's first group). Rank zero writes.
    A resume keeps the rows up to the checkpoint's step and appends after them (the rows a crash left beyond
    it are dropped: the resumed run redoes those steps). A failing plot is a warning, never the run's end.
    """

    def __init__(
        self, dirpath: str, loss_key: str = "train/loss", val_prefix: str = "val", plot: bool = True
    ) -> None:
        self.dirpath = Path(dirpath)
        self.loss_key, self.val_prefix, self.plot = loss_key, val_prefix, plot
        self.clock = CpuClock()
        self.rows: list[dict[str, float]] = []

    @property
    def csv_path(self) -> Path:
        return self.dirpath / CURVE_CSV

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.clock.start()

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # here, not in on_fit_start: a resumed global_step is restored between the two
        self.rows = []
        if not self.csv_path.is_file():
            return
        # rewritten whole: drops those rows and gives a file of an older layout this one's columns
        self.rows = [row for row in read_curve(self.csv_path) if row["step"] <= trainer.global_step]
        write_curve(self.csv_path, self.rows)

    def _metric(self, trainer: L.Trainer, key: str) -> float:
        value = trainer.callback_metrics.get(key)
        return math.nan if value is None else float(value)

    @staticmethod
    def _lr(trainer: L.Trainer) -> float:
        try:
            return float(trainer.optimizers[0].param_groups[0]["lr"])
        except (IndexError, KeyError, TypeError, ValueError):
            return math.nan

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        before_fit = validating_before_fit(trainer)
        if trainer.sanity_checking or not (trainer.state.fn == "fit" or before_fit):
            return
        row = {
            "step": float(trainer.global_step),
            "wall_seconds": 0.0 if before_fit else self.clock.wall_seconds(),
            "cpu_seconds": 0.0 if before_fit else self.clock.cpu_seconds(),
            "train_loss": self._metric(trainer, self.loss_key),
            "val_psnr": self._metric(trainer, f"{self.val_prefix}/psnr"),
            "val_ssim": self._metric(trainer, f"{self.val_prefix}/ssim"),
            "lr": self._lr(trainer),
        }
        self.rows.append(row)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        new = not self.csv_path.is_file() or self.csv_path.stat().st_size == 0
        with open(self.csv_path, "a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(curve_cells(row))
        if self.plot:
            try:
                plot_curve(self.rows, self.dirpath / CURVE_PNG)
            except Exception as error:  # a plot is a convenience: never the end of a training run
                log.warning(
                    "could not draw %s: %s: %s", self.dirpath / CURVE_PNG, type(error).__name__, error
                )

    def state_dict(self) -> dict[str, float]:
        return self.clock.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.clock.load_state_dict(state_dict)
