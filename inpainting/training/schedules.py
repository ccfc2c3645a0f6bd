"""Learning-rate warm-up before a schedule, from torch's own schedulers (``LinearLR`` then ``SequentialLR``).

Why: Adam's first updates move every weight by about the learning rate whatever its gradient's size, which
perturbs weights that are already good (fine-tuning) or not yet sensible (large rates). A linear warm-up (Goyal et
al. 2017, "Accurate, Large Minibatch SGD") lets Adam's moment estimates settle first. In the fine-tuning sweep of
docs/benchmarks.md ("recipe_sweep") it did not stand out from the val curve's own noise at 480 CPU-seconds.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

__all__ = ["warmup"]


def warmup(
    optimizer: Optimizer,
    warmup_steps: int,
    total_steps: int | None = None,
    eta_min: float = 0.0,
    start_factor: float = 0.01,
) -> LRScheduler:
    """Linear warm-up from ``start_factor`` x lr to lr over ``warmup_steps``, then cosine decay to ``eta_min`` at
    ``total_steps`` (None: constant lr after the warm-up, for runs a CPU or wall-clock budget ends)."""
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
        raise ValueError(f"scheduler.warmup_steps must be a positive integer, got {warmup_steps!r}")
    if total_steps is not None and total_steps <= warmup_steps:
        raise ValueError(
            f"scheduler.total_steps ({total_steps}) must exceed scheduler.warmup_steps ({warmup_steps}), or be null"
        )
    if not 0.0 < start_factor <= 1.0:
        raise ValueError(f"scheduler.start_factor must be in (0, 1], got {start_factor}")
    ramp = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps)
    after = (
        ConstantLR(optimizer, factor=1.0, total_iters=0)
        if total_steps is None
        else CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=eta_min)
    )
    return SequentialLR(optimizer, [ramp, after], milestones=[warmup_steps])
