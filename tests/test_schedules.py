"""scheduler=warmup_cosine / warmup_constant: a linear warm-up, then cosine decay or a constant learning rate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inpainting.training.fit import train
from inpainting.training.schedules import warmup
from inpainting.training.sweep_summary import read_curve


def _lrs(steps: int, **kwargs) -> list[float]:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = warmup(optimizer, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_warmup_ramps_linearly_then_decays_or_holds():
    cosine = _lrs(30, warmup_steps=10, total_steps=30, eta_min=1e-6)
    assert cosine[0] == pytest.approx(1e-5) and cosine[5] == pytest.approx(1e-5 + 5 * (1e-3 - 1e-5) / 10)
    assert cosine[10] == pytest.approx(1e-3)  # the full rate once the warm-up ends
    assert all(a > b for a, b in zip(cosine[10:-1], cosine[11:], strict=False))  # then strictly decaying
    assert cosine[-1] < 2e-5
    constant = _lrs(30, warmup_steps=10)
    assert constant[:10] == pytest.approx(cosine[:10]) and constant[10:] == pytest.approx([1e-3] * 20)


@pytest.mark.parametrize(
    "kwargs, option",
    [({"warmup_steps": 0}, "warmup_steps"), ({"warmup_steps": 10, "total_steps": 10}, "total_steps")],
)
def test_bad_warmup_settings_name_the_option(kwargs, option):
    with pytest.raises(ValueError, match=f"scheduler.{option}"):
        _lrs(1, **kwargs)


def test_training_with_a_warmup_schedule_logs_the_ramp(tiny_train_config):
    cfg = tiny_train_config(
        "scheduler=warmup_cosine", "scheduler.warmup_steps=2", "trainer.max_steps=4", "test=false"
    )
    train(cfg)
    rows = read_curve(Path(cfg.paths.output_dir) / "curve.csv")
    assert rows[-1]["step"] == 4 and rows[-1]["lr"] < cfg.optimizer.lr  # decayed after the warm-up
