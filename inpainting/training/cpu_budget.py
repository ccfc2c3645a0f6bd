"""CPU time of a training run, and a cap on it (``callbacks.cpu_budget.max_cpu_seconds``).

A wall-clock cap (``+trainer.max_time``) ranks recipes by how busy the machine was; comparing recipes "per
CPU-hour" needs the CPU time the run itself used. :func:`time.process_time` is that: user + system time of every
thread of this process (so ``OMP_NUM_THREADS=4`` spends up to 4 CPU-seconds per wall second), not of data-loader
worker processes (``data.num_workers>0``) and not of other processes on the machine.

:class:`CpuClock` counts from the start of fit and carries the seconds of earlier processes of the same run across
a resume (its state is stored in the checkpoint), so a resumed run's budget and curve continue rather than restart.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L

from inpainting.errors import ConfigError

log = logging.getLogger(__name__)


class CpuClock:
    """CPU-seconds and wall-seconds this run has used since fit started, earlier processes of a resume included."""

    def __init__(self) -> None:
        self.cpu_before = 0.0  # seconds of the processes this run was resumed from
        self.wall_before = 0.0
        self.cpu_start: float | None = None
        self.wall_start = 0.0

    def start(self) -> None:
        self.cpu_start, self.wall_start = time.process_time(), time.perf_counter()

    def cpu_seconds(self) -> float:
        if self.cpu_start is None:
            return self.cpu_before
        return self.cpu_before + time.process_time() - self.cpu_start

    def wall_seconds(self) -> float:
        if self.cpu_start is None:
            return self.wall_before
        return self.wall_before + time.perf_counter() - self.wall_start

    def state_dict(self) -> dict[str, float]:
        return {"cpu_seconds": self.cpu_seconds(), "wall_seconds": self.wall_seconds()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cpu_before = float(state.get("cpu_seconds", 0.0))
        self.wall_before = float(state.get("wall_seconds", 0.0))


class CpuBudget(L.Callback):
    """Stop training once the run has used ``max_cpu_seconds`` of CPU time (``None``: no cap).

    Like ``trainer.max_time`` it sets ``trainer.should_stop``: Lightning then validates at that step, the
    checkpoint callbacks save and test runs as after any end of fit. Under DDP every rank counts its own process
    and all stop when any one is over.
    """

    def __init__(self, max_cpu_seconds: float | None = None) -> None:
        if max_cpu_seconds is not None and not max_cpu_seconds > 0:
            raise ConfigError(
                f"callbacks.cpu_budget.max_cpu_seconds={max_cpu_seconds}: give a positive number of seconds, "
                "or null for no cap"
            )
        self.max_cpu_seconds = max_cpu_seconds
        self.clock = CpuClock()
        self.stopped = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.clock.start()
        self.stopped = False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.max_cpu_seconds is None or self.stopped:
            return
        spent = self.clock.cpu_seconds()
        over = trainer.strategy.reduce_boolean_decision(spent >= self.max_cpu_seconds, all=False)
        if over:
            trainer.should_stop = self.stopped = True
            if trainer.is_global_zero:
                log.info(
                    "CPU budget reached: %.0f of %.0f CPU-seconds (callbacks.cpu_budget.max_cpu_seconds) at "
                    "step %d; stopping training",
                    spent,
                    self.max_cpu_seconds,
                    trainer.global_step,
                )

    def state_dict(self) -> dict[str, float]:
        return self.clock.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.clock.load_state_dict(state_dict)
