"""Every training run leaves its learning curve (curve.csv, curve.png) in its run dir, continued across a resume,
and callbacks.cpu_budget.max_cpu_seconds ends a run on CPU time as trainer.max_time does on wall time."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from inpainting.cli.errors import is_user_error, user_error_message
from inpainting.errors import ConfigError
from inpainting.training import curves
from inpainting.training.fit import train
from inpainting.training.sweep_summary import COLUMNS, read_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_dir(cfg) -> Path:
    return Path(cfg.paths.output_dir)


def _header_and_steps(path: Path) -> tuple[list[str], list[int]]:
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    return rows[0], [int(row[0]) for row in rows[1:]]


def test_a_run_writes_one_curve_row_per_validation_and_the_plot(tiny_train_config):
    cfg = tiny_train_config("trainer.max_steps=4", "trainer.val_check_interval=2", "test=false")
    train(cfg)
    run = _run_dir(cfg)
    header, steps = _header_and_steps(run / "curve.csv")
    assert header == list(COLUMNS)
    assert steps == [0, 2, 4]  # where the net starts (validate_first), then fit's; no sanity-check row
    rows = read_curve(run / "curve.csv")
    assert all(r["val_psnr"] > 10 and 0 < r["val_ssim"] <= 1 for r in rows)
    assert all(r["train_loss"] > 0 and r["lr"] > 0 for r in rows[1:])
    assert rows[0]["cpu_seconds"] == rows[0]["wall_seconds"] == 0
    assert 0 <= rows[1]["cpu_seconds"] <= rows[2]["cpu_seconds"]
    assert 0 <= rows[1]["wall_seconds"] <= rows[2]["wall_seconds"]
    assert (run / "curve.png").read_bytes()[:8] == PNG_MAGIC


def test_validate_first_false_leaves_out_the_step_zero_row(tiny_train_config):
    cfg = tiny_train_config(
        "trainer.max_steps=2", "trainer.val_check_interval=2", "test=false", "validate_first=false"
    )
    train(cfg)
    assert _header_and_steps(_run_dir(cfg) / "curve.csv")[1] == [2]


def test_a_resume_appends_after_the_checkpoint_step_with_one_header(tiny_train_config):
    cfg = tiny_train_config("trainer.max_steps=4", "trainer.val_check_interval=2", "test=false")
    train(cfg)
    run = _run_dir(cfg)
    first = read_curve(run / "curve.csv")
    # a crash after a validation that no checkpoint holds: the resumed run redoes step 6, so that row goes
    with open(run / "curve.csv", "a", newline="") as file:
        file.write("6,99.0,99.0,0.5,20.0,0.5,0.0001\n")
    resumed = tiny_train_config(
        "trainer.max_steps=8",
        "trainer.val_check_interval=2",
        "test=false",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
    )
    train(resumed)
    header, steps = _header_and_steps(run / "curve.csv")
    assert header == list(COLUMNS) and steps == [0, 2, 4, 6, 8]  # a resume does not validate first again
    rows = read_curve(run / "curve.csv")
    assert rows[:3] == first
    # the clocks continue from the checkpoint's (not from 0 in the new process, not from the dropped row's 99)
    assert first[2]["cpu_seconds"] <= rows[3]["cpu_seconds"] < 99
    assert first[2]["wall_seconds"] <= rows[3]["wall_seconds"] < 99


def test_a_plot_that_fails_is_a_warning_and_the_run_goes_on(tiny_train_config, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(curves, "plot_curve", broken)
    cfg = tiny_train_config("test=false")
    with caplog.at_level(logging.WARNING, logger=curves.__name__):
        train(cfg)
    assert "could not draw" in caplog.text and "RuntimeError: no fonts" in caplog.text
    assert _header_and_steps(_run_dir(cfg) / "curve.csv")[1] == [0, 2]
    assert (_run_dir(cfg) / "checkpoints" / "last.ckpt").is_file()


def test_the_cpu_budget_stops_training_then_validates_and_checkpoints(tiny_train_config, caplog):
    cfg = tiny_train_config(
        "trainer.max_steps=50",
        "trainer.val_check_interval=20",
        "callbacks.cpu_budget.max_cpu_seconds=1e-6",
    )
    with caplog.at_level(logging.INFO, logger="inpainting.training.cpu_budget"):
        metrics = train(cfg)
    run = _run_dir(cfg)
    # stopped after its first step, validated there (not at step 20), saved, then tested as after max_steps
    assert _header_and_steps(run / "curve.csv")[1] == [0, 1]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "test/psnr" in metrics
    (line,) = [r.getMessage() for r in caplog.records if "CPU budget" in r.getMessage()]
    assert "callbacks.cpu_budget.max_cpu_seconds" in line and "step 1" in line


def test_the_cpu_budget_is_off_by_default_and_refuses_a_non_positive_cap(tiny_train_config):
    cfg = tiny_train_config()
    assert cfg.callbacks.cpu_budget.max_cpu_seconds is None
    assert instantiate(cfg.callbacks.cpu_budget).max_cpu_seconds is None
    with pytest.raises(InstantiationException) as error:
        instantiate(cfg.callbacks.cpu_budget, max_cpu_seconds=0)
    # what train's entry point prints: one line naming the option, exit 1
    assert isinstance(error.value.__cause__, ConfigError) and is_user_error(error.value)
    message = user_error_message(error.value)
    assert "callbacks.cpu_budget.max_cpu_seconds=0" in message and "\n" not in message
