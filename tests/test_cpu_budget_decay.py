"""callbacks.cpu_budget.decay=cosine: the learning rate follows the CPU budget, so a job of a budget-capped sweep
ends decayed whatever its steps cost."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from inpainting.errors import ConfigError
from inpainting.training.cpu_budget import CpuBudget, budget_lr_factor
from inpainting.training.fit import train
from inpainting.training.sweep_summary import read_curve


def test_the_factor_warms_up_by_step_then_follows_a_cosine_of_the_budget_spent():
    assert budget_lr_factor(0.0, 100, warmup_steps=10, eta_min_fraction=0.0) == pytest.approx(1.0)
    assert budget_lr_factor(0.5, 100, 10, 0.1) == pytest.approx(0.55)  # halfway: half-way between 1 and 0.1
    assert budget_lr_factor(1.0, 100, 10, 0.1) == pytest.approx(0.1)
    assert budget_lr_factor(3.0, 100, 10, 0.1) == pytest.approx(0.1)  # past the budget: stays at the floor
    assert budget_lr_factor(0.25, 100, 10, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    # the warm-up is counted in steps, and multiplies the cosine
    assert budget_lr_factor(0.0, 0, 10, 0.0) == pytest.approx(0.01)
    assert budget_lr_factor(0.0, 5, 10, 0.0) == pytest.approx(0.01 + 0.99 * 0.5)
    assert budget_lr_factor(0.5, 5, 10, 0.0) == pytest.approx(0.5 * (0.01 + 0.99 * 0.5))
    assert budget_lr_factor(0.0, 5, 0, 0.0) == 1.0  # no warm-up


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"max_cpu_seconds": 10, "decay": "linear"}, "callbacks.cpu_budget.decay='linear'"),
        ({"decay": "cosine"}, "callbacks.cpu_budget.max_cpu_seconds"),
        (
            {"max_cpu_seconds": 10, "decay": "cosine", "warmup_steps": -1},
            "callbacks.cpu_budget.warmup_steps=-1",
        ),
        ({"max_cpu_seconds": 10, "decay": "cosine", "eta_min": -1.0}, "callbacks.cpu_budget.eta_min=-1.0"),
        ({"max_wall_seconds": 0}, "callbacks.cpu_budget.max_wall_seconds=0"),
    ],
)
def test_bad_decay_settings_are_one_line_naming_the_option(kwargs, option):
    with pytest.raises(ConfigError) as error:
        CpuBudget(**kwargs)
    assert option in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("budget", ["max_cpu_seconds", "max_wall_seconds"])
def test_a_budget_capped_run_ends_with_its_rate_decayed_and_keeps_the_base_rate_for_a_resume(
    tiny_train_config, budget, caplog
):
    cfg = tiny_train_config(
        "trainer.max_steps=100000",
        "trainer.val_check_interval=4",
        "test=false",
        "scheduler=constant",
        "optimizer.lr=1e-3",
        f"callbacks.cpu_budget.{budget}=10",
        "callbacks.cpu_budget.decay=cosine",
        "callbacks.cpu_budget.warmup_steps=2",
    )
    with caplog.at_level(logging.INFO, logger="inpainting.training.cpu_budget"):
        train(cfg)
    run = Path(cfg.paths.output_dir)
    rows = read_curve(run / "curve.csv")[1:]  # the step-0 row has no rate yet
    clock = "cpu_seconds" if budget == "max_cpu_seconds" else "wall_seconds"
    assert rows and rows[-1][clock] >= 10 and rows[-1]["step"] < 100000  # the budget, not max_steps, ended it
    assert "budget reached" in caplog.text and f"(callbacks.cpu_budget.{budget})" in caplog.text
    lrs = [row["lr"] for row in rows]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))  # past the warm-up the rate only falls
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    (group,) = state["optimizer_states"][0]["param_groups"]
    assert group["initial_lr"] == pytest.approx(1e-3)  # the base rate a resume decays from
    # the last step started after most of the budget was spent (one step of a loaded machine is < 3 s): the
    # cosine's tail, < 0.3 x the base rate from 63% of the budget on
    assert group["lr"] < 0.3 * 1e-3


def test_every_rank_takes_the_rate_from_rank_zeros_budget():
    """Under DDP each rank's clock differs; a rate from each rank's own would step the replicas apart."""
    budget = CpuBudget(max_cpu_seconds=100, decay="cosine", eta_min=0.0)
    budget.clock.cpu_seconds = lambda: 90.0  # this rank: 90% spent
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    broadcasts = []

    def broadcast(obj, src=0):
        broadcasts.append((obj, src))
        return 0.5  # rank 0 has spent half

    trainer = SimpleNamespace(
        strategy=SimpleNamespace(broadcast=broadcast), optimizers=[optimizer], global_step=50
    )
    budget.on_train_batch_start(trainer, None, None, 0)
    assert broadcasts == [(pytest.approx(0.9), 0)]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5e-3)  # the cosine at rank 0's half, not at 90%


def test_the_decay_refuses_a_second_schedule_on_the_same_rate(tiny_train_config):
    cfg = tiny_train_config(
        "scheduler=cosine", "callbacks.cpu_budget.max_cpu_seconds=60", "callbacks.cpu_budget.decay=cosine"
    )
    with pytest.raises(ConfigError, match="use scheduler=constant"):
        train(cfg)
