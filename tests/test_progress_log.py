"""Progress a person can follow in a batch job's log (no terminal): one line per validation and a summary for
training, log lines for a predict folder, no live bar and no ``Epoch 299/-2``; and the first-hour fixes that go
with it (a missing data folder fails before anything starts, export without ckpt_path exports the shipped model)."""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from inpainting.inference import predict_runner
from inpainting.training.cpu_budget import CpuBudget
from inpainting.training.fit import train
from inpainting.training.progress import StepProgressBar, budget_time_left, clock
from tests.conftest import CONF_DIR, TINY_OVERRIDES, compose_config, run_cli
from tests.test_inference import holes, photo, tiny_generator_file

BAR_LINE_STARTS = ("┏", "┡", "┗", "└")  # rich tables (model summary, test metrics) use ━ in their borders


def _run_dirs(cwd: Path) -> list[Path]:
    runs = cwd / "logs" / "train" / "runs"
    return sorted(runs.iterdir()) if runs.is_dir() else []


def test_a_run_outside_a_terminal_logs_one_line_per_validation(tmp_path, image_folder):
    overrides = [*TINY_OVERRIDES, "trainer.max_steps=4", "trainer.val_check_interval=2"]
    proc = run_cli([*overrides, f"data.root={image_folder}", f"paths.root_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    lines = output.splitlines()
    val = [line for line in lines if "val psnr" in line]
    assert len(val) == 3, val  # where training starts (validate_first), then validation at step 2 and step 4
    assert "step 0, before training | val psnr " in val[0]
    assert "step 2/4 | loss " in val[1] and " img/s | " in val[1] and "elapsed" in val[1] and "left" in val[1]
    assert "step 4/4" in val[2]
    assert any("fit done: step 4/4" in line for line in lines)
    assert any("test psnr" in line for line in lines)
    # no live bar (its frames, its it/s, Lightning's epoch counter), no colour escape codes in a log
    assert [line for line in lines if "━" in line and not line.lstrip().startswith(BAR_LINE_STARTS)] == []
    assert "it/s" not in output and "Epoch " not in output and "/-" not in output
    assert "\x1b[" not in output
    # the run's train.log has the same lines
    (run,) = _run_dirs(tmp_path)
    train_log = (run / "train.log").read_text()
    for line in val:
        assert line.split(" - ", 1)[1] in train_log
    assert "fit done: step 4/4" in train_log and "test psnr" in train_log


def test_the_bar_counts_steps_not_epochs_in_a_step_based_run(tiny_train_config, capsys):
    bar = StepProgressBar(only_in_terminal=False)
    bar._trainer = SimpleNamespace(max_steps=300, max_epochs=-1, global_step=12)
    assert bar._get_train_description(299) == "step  12/300"
    bar._trainer = SimpleNamespace(max_steps=-1, max_epochs=5, global_step=12)
    assert bar._get_train_description(2).startswith("Epoch 2/4")
    assert StepProgressBar().is_disabled  # pytest's stdout is no terminal

    # forced on in a pipe, the rendered bar reads steps
    train(tiny_train_config("callbacks.progress_bar.only_in_terminal=false", "test=false"))
    out = capsys.readouterr().out
    assert "step 2/2" in out and "/-" not in out and "Epoch" not in out


def test_the_time_left_of_a_budget_capped_run_comes_from_its_cpu_budget(monkeypatch):
    budget = CpuBudget(max_cpu_seconds=100)
    budget.clock.cpu_before = 10.0  # spent by the processes this run resumed from
    monkeypatch.setattr(budget.clock, "cpu_seconds", lambda: 30.0)  # 20 CPU-s in this process
    trainer = SimpleNamespace(callbacks=[budget])
    # 70 CPU-s still to spend at the 20 CPU-s per 40 wall-s this process has run: 140 s
    assert budget_time_left(trainer, elapsed=40.0) == pytest.approx(140.0)
    # a wall budget that ends sooner: its own rest, 60 s
    both = CpuBudget(max_cpu_seconds=100, max_wall_seconds=100)
    monkeypatch.setattr(both.clock, "cpu_seconds", lambda: 20.0)
    monkeypatch.setattr(both.clock, "wall_seconds", lambda: 40.0)
    assert budget_time_left(SimpleNamespace(callbacks=[both]), elapsed=40.0) == pytest.approx(60.0)
    assert math.isnan(budget_time_left(SimpleNamespace(callbacks=[CpuBudget()]), elapsed=40.0))  # no cap
    assert math.isnan(budget_time_left(SimpleNamespace(callbacks=[]), elapsed=40.0))


def test_clock():
    assert (clock(5), clock(95), clock(4000), clock(float("nan"))) == ("5s", "1m35s", "1h06m40s", "?")


def test_predict_on_a_folder_logs_progress_lines_outside_a_terminal(tmp_path, caplog, monkeypatch):
    weights = tiny_generator_file(tmp_path / "tiny.pt")
    image, mask = photo(24, 32), holes(24, 32, [(4, 4, 12, 12)])
    (tmp_path / "in").mkdir()
    for i in range(5):
        Image.fromarray(image).save(tmp_path / "in" / f"p{i}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "in" / f"p{i}_mask.png")
    monkeypatch.setattr(predict_runner, "LOG_EVERY", 2)
    cfg = compose_config(
        tmp_path,
        [f"ckpt_path={weights}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "progress=true"],
        config_name="predict",
    )
    try:
        with caplog.at_level(logging.INFO):
            result = predict_runner.run(cfg)
    finally:
        GlobalHydra.instance().clear()
    assert len(result.written) == 5
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("image ")]
    assert [line.split(" (")[0] for line in lines] == ["image 2/5", "image 4/5", "image 5/5"]
    assert "images/s" in lines[0] and "left" in lines[0]


def test_a_missing_data_folder_fails_before_anything_starts(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    missing = tmp_path / "no" / "such" / "dir"
    args = [*TINY_OVERRIDES, "logger=wandb", f"data.root={missing}", f"paths.root_dir={tmp_path}"]
    proc = subprocess.run(
        [sys.executable, "-m", "inpainting.train", *args],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(CONF_DIR.parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert f"data.root={missing}: does not exist" in output
    assert "Traceback" not in output and "wandb" not in output.lower() and "Instantiating" not in output
    assert _run_dirs(tmp_path) == [] and not (tmp_path / "logs").exists()


def test_a_data_folder_without_images_is_named_with_its_option(tmp_path, image_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli(
        [*TINY_OVERRIDES, "data.root=null", f"data.train_root={image_folder}", f"data.val_root={empty}"]
        + [f"paths.root_dir={tmp_path}"],
        cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert f"data.val_root={empty}: no images" in output and "Instantiating" not in output


def test_export_without_ckpt_path_exports_the_shipped_model(tmp_path):
    if importlib.util.find_spec("onnx") is None:
        pytest.skip("onnx is not installed")
    shipped = tiny_generator_file(tmp_path / "shipped.pt")
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "inpainting.export", "format=onnx", f"paths.output_dir={run_dir}"],
        env={**os.environ, "INPAINTING_WEIGHTS": str(shipped), "PYTHONPATH": str(CONF_DIR.parent)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "ckpt_path is required" not in output
    assert f"no ckpt_path given: exporting the shipped model {shipped}" in output
    assert (run_dir / "shipped.onnx").is_file()  # in the run dir, not beside the installed weights
    assert not (tmp_path / "shipped.onnx").exists()
    # the short header of the other commands, not the whole config
    assert "task     export" in output and f"wrote {run_dir / 'shipped.onnx'}" in output
    assert "format: onnx" not in output and "hydra:" not in output
