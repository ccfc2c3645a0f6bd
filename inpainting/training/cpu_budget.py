"""CPU time of a training run, and caps on it (``callbacks.cpu_budget.max_cpu_seconds``, ``max_wall_seconds``).

A wall-clock cap (``+trainer.max_time``) ranks recipes by how busy the machine was; comparing recipes "per
CPU-hour" needs the CPU time the run itself used. :func:`time.process_time` is that: user + system time of every
thread of this process (so ``OMP_NUM_THREADS=4`` spends up to 4 CPU-seconds per wall second), not of data-loader
worker processes (``data.num_workers>0``) and not of other processes on the machine.

:class:`CpuClock` counts from the start of fit and carries the seconds of earlier processes of the same run across
a resume (its state is stored in the checkpoint), so a resumed run's budget and curve continue rather than restart.

``decay=cosine`` spends the learning rate with the budget: a schedule over ``trainer.max_steps`` cannot end
decayed when the budget, not the step count, ends the run, and recipes whose steps cost different CPU time (width,
batch, crop size) then stop at different points of their schedule. Here the rate follows the CPU-seconds spent
instead, so every job of a sweep ends settled at the same budget. ``max_wall_seconds`` is the same on wall time
(a machine lent by the minute); with both set, the rate follows whichever is nearer its end. The price: the rate
depends on measured time, so two runs of the same seed are no longer bit-identical.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L
from torch.optim.lr_scheduler import ConstantLR

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


DECAYS = ("none", "cosine")


def budget_lr_factor(
    spent_fraction: float, step: int, warmup_steps: int, eta_min_fraction: float, start_factor: float = 0.01
) -> float:
    """The fraction of the base learning rate at ``step`` once ``spent_fraction`` of the budget is used: a linear
    warm-up over ``warmup_steps`` (from ``start_factor``), times a cosine from 1 to ``eta_min_fraction``."""
    progress = min(max(spent_fraction, 0.0), 1.0)
    cosine = eta_min_fraction + (1.0 - eta_min_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if warmup_steps > 0 and step < warmup_steps:
        return cosine * (start_factor + (1.0 - start_factor) * step / warmup_steps)
    return cosine


class CpuBudget(L.Callback):
    """Stop training once the run has used ``max_cpu_seconds`` of CPU time or ``max_wall_seconds`` of wall time
    (``None``: no such cap), and with ``decay="cosine"`` decay the learning rate over whichever budget is nearer
    its end (a warm-up of ``warmup_steps`` steps first).

    Like ``trainer.max_time`` it sets ``trainer.should_stop``: Lightning then validates at that step, the
    checkpoint callbacks save and test runs as after any end of fit. Under DDP every rank counts its own process
    and all stop when any one is over. The decay sets every optimizer's rate itself before each step, from each
    parameter group's base rate, so it refuses to run with a schedule of its own (use ``scheduler=constant``).
    The CPU budget is for comparing recipes on a shared machine; the wall budget is for a machine lent by the
    minute (a GPU run that must end decayed whatever its step rate turns out to be).
    """

    def __init__(
        self,
        max_cpu_seconds: float | None = None,
        decay: str = "none",
        warmup_steps: int = 0,
        eta_min: float = 1.0e-6,
        max_wall_seconds: float | None = None,
    ) -> None:
        for name, value in (("max_cpu_seconds", max_cpu_seconds), ("max_wall_seconds", max_wall_seconds)):
            if value is not None and not value > 0:
                raise ConfigError(
                    f"callbacks.cpu_budget.{name}={value}: give a positive number of seconds, or null for no cap"
                )
        if decay not in DECAYS:
            raise ConfigError(f"callbacks.cpu_budget.decay={decay!r}: choose one of {', '.join(DECAYS)}")
        if decay != "none" and max_cpu_seconds is None and max_wall_seconds is None:
            raise ConfigError(
                f"callbacks.cpu_budget.decay={decay} decays over a budget: also set "
                "callbacks.cpu_budget.max_cpu_seconds or callbacks.cpu_budget.max_wall_seconds to a positive "
                "number of seconds"
            )
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ConfigError(
                f"callbacks.cpu_budget.warmup_steps={warmup_steps!r}: give a whole number of steps, 0 or more"
            )
        if not eta_min >= 0:
            raise ConfigError(f"callbacks.cpu_budget.eta_min={eta_min}: give a learning rate of 0 or more")
        self.max_cpu_seconds = max_cpu_seconds
        self.max_wall_seconds = max_wall_seconds
        self.decay = decay
        self.warmup_steps = warmup_steps
        self.eta_min = eta_min
        self.clock = CpuClock()
        self.stopped = False

    def _budgets(self) -> list[tuple[str, float, float]]:
        """(name, seconds spent, cap) of each budget that is set."""
        budgets = []
        if self.max_cpu_seconds is not None:
            budgets.append(("max_cpu_seconds", self.clock.cpu_seconds(), self.max_cpu_seconds))
        if self.max_wall_seconds is not None:
            budgets.append(("max_wall_seconds", self.clock.wall_seconds(), self.max_wall_seconds))
        return budgets

    def spent_fraction(self) -> float:
        """The larger of the fractions of the CPU and wall budgets used so far (0 when neither is set)."""
        return max([spent / cap for _, spent, cap in self._budgets()], default=0.0)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.clock.start()
        self.stopped = False
        if self.decay != "none":
            _refuse_other_schedules(trainer)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.decay == "none":
            return
        # one rate for every rank: rank 0's clock (each rank's own would step DDP replicas apart)
        spent = trainer.strategy.broadcast(self.spent_fraction(), src=0)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                # the base rate is kept in the group, so it is saved with the optimizer and survives a resume
                base = group.setdefault("initial_lr", group["lr"])
                floor = min(self.eta_min / base, 1.0) if base > 0 else 0.0
                group["lr"] = base * budget_lr_factor(spent, trainer.global_step, self.warmup_steps, floor)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        budgets = self._budgets()
        if not budgets or self.stopped:
            return
        over = [(name, spent, cap) for name, spent, cap in budgets if spent >= cap]
        if trainer.strategy.reduce_boolean_decision(bool(over), all=False):
            trainer.should_stop = self.stopped = True
            if trainer.is_global_zero:
                name, spent, cap = over[0] if over else budgets[0]  # another rank's budget may have ended it
                kind = "CPU" if name == "max_cpu_seconds" else "wall"
                log.info(
                    "%s budget reached: %.0f of %.0f %s-seconds (callbacks.cpu_budget.%s) at step %d; "
                    "stopping training",
                    kind,
                    spent,
                    cap,
                    kind,
                    name,
                    trainer.global_step,
                )

    def state_dict(self) -> dict[str, float]:
        return self.clock.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.clock.load_state_dict(state_dict)


def _refuse_other_schedules(trainer: L.Trainer) -> None:
    """Two schedules on one rate would multiply: the budget's decay runs only beside a constant one."""
    for config in trainer.lr_scheduler_configs:
        if not isinstance(config.scheduler, ConstantLR):
            raise ConfigError(
                f"callbacks.cpu_budget.decay sets the learning rate itself, but a "
                f"{type(config.scheduler).__name__} schedule is configured too: use scheduler=constant"
            )
