"""End-to-end training through the Hydra config: composition, fast_dev_run, outputs, resume, multirun."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from inpainting.training.fit import train
from tests.conftest import CONF_DIR, TINY_OVERRIDES, run_cli, write_tiny_images

REPO_ROOT = CONF_DIR.parent
GROUPS_NEEDING_GPU = {("trainer", "gpu"), ("trainer", "ddp")}


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group", ["data", "mask", "model", "loss", "optimizer", "scheduler", "logger", "callbacks"]
)
def test_every_option_of_group_composes_and_instantiates(group, tiny_train_config, tmp_path):
    options = group_options(group)
    assert options, f"conf/{group} has no options"
    mask_folder = tmp_path / "masks"
    write_tiny_images(mask_folder, count=2)
    for option in options:
        extra = [f"mask.root={mask_folder}"] if (group, option) == ("mask", "folder") else []
        if group == "scheduler" and option.startswith("warmup"):
            extra = ["scheduler.warmup_steps=1"]  # a warm-up must end before the tiny runs' 2 steps
        cfg = tiny_train_config(f"{group}={option}", *extra)
        node = cfg.get(group)
        if group == "optimizer":
            factory = instantiate(node)
            assert isinstance(factory(params=[torch.nn.Parameter(torch.zeros(1))]), torch.optim.Optimizer)
        elif group == "scheduler":
            optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
            assert isinstance(instantiate(node)(optimizer=optimizer), torch.optim.lr_scheduler.LRScheduler)
        elif group in ("logger", "callbacks"):
            objects = [instantiate(v) for v in (node or {}).values()]
            assert all(obj is not None for obj in objects)
        else:
            assert instantiate(node) is not None, f"{group}={option}"


@pytest.mark.parametrize("option", group_options("trainer"))
def test_every_trainer_option_composes(option, tiny_train_config):
    cfg = tiny_train_config(f"trainer={option}")
    assert cfg.trainer._target_.endswith("Trainer")
    if ("trainer", option) not in GROUPS_NEEDING_GPU:
        trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
        assert trainer.max_steps == 2


@pytest.mark.parametrize("option", group_options("debug") + group_options("experiment"))
def test_debug_and_experiment_presets_compose(option, tiny_train_config):
    group = "debug" if option in group_options("debug") else "experiment"
    cfg = tiny_train_config(f"{group}={option}")
    assert instantiate(cfg.module) is not None


@pytest.mark.parametrize("model", ["sa_unet", "unet"])
def test_fast_dev_run_trains_each_model(model, tiny_train_config):
    cfg = tiny_train_config(f"model={model}", "debug=fast_dev_run")
    metrics = train(cfg)
    assert "train/loss" in metrics and torch.isfinite(torch.tensor(metrics["train/loss"]))


def test_short_run_writes_checkpoints_panels_logs_and_metrics(tiny_train_config):
    cfg = tiny_train_config("model=sa_unet", "callbacks.image_panels.every_n_steps=1")
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-step*.ckpt"))
    assert list((run / "panels").glob("train_step*.png")) and list((run / "panels").glob("val_step*.png"))
    for key in ("val/psnr", "val/ssim", "test/psnr", "test/ssim"):
        assert key in metrics and metrics[key] > 0, key
    bucket_keys = [k for k in metrics if k.startswith("val/psnr_")]
    assert bucket_keys, "validation reports PSNR per hole-area bucket"
    with open(run / "csv" / "metrics.csv") as file:
        columns = next(csv.reader(file))
    assert {"train/loss", "val/psnr", "lr-Adam"} <= set(columns)
    # the checkpoint carries the run's config as plain data, loadable without unpickling objects
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["inpainting_config"]["model"]["_target_"] == cfg.model._target_


def test_resume_continues_global_step_optimizer_and_schedule(tiny_train_config, tmp_path):
    cfg = tiny_train_config("test=false")
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    first = torch.load(last, weights_only=True)
    assert first["global_step"] == 2

    resumed = tiny_train_config("test=false", f"ckpt_path={last}", "trainer.max_steps=4")
    with open_dict(resumed):
        resumed.paths.output_dir = str(tmp_path / "resumed")
    train(resumed)
    second = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert second["global_step"] == 4
    adam_steps = {int(s["step"]) for s in second["optimizer_states"][0]["state"].values()}
    assert adam_steps == {4}, "Adam moments must continue from the checkpoint, not restart"
    assert second["lr_schedulers"][0]["last_epoch"] == 4


def test_multirun_runs_each_model_in_its_own_directory(tmp_path, image_folder):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            "model=sa_unet,unet",
            *TINY_OVERRIDES,
            f"data.root={image_folder}",
            "test=false",
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        assert (sweep_dir / job / "checkpoints" / "last.ckpt").is_file()
    attention = [OmegaConf.load(sweep_dir / job / ".hydra" / "config.yaml").model.attention for job in "01"]
    assert any(a != "none" for a in attention[0]), "job 0 is sa_unet: attention somewhere"
    assert all(a == "none" for a in attention[1]), "job 1 is unet: no attention"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model=no_such_model", "Could not find 'model/no_such_model'"),
        ("data.imag_size=64", "data.imag_size"),
        ("data.batch_size=0", "batch_size"),
        ("data.image_size=-4", "image_size"),
    ],
)
def test_bad_config_gives_a_clear_message_not_a_traceback(override, expected, tmp_path, image_folder):
    result = run_cli(
        [*TINY_OVERRIDES, f"data.root={image_folder}", f"paths.root_dir={tmp_path}", override], cwd=tmp_path
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert expected in output
    assert "Traceback" not in output


def test_empty_data_folder_names_the_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli([*TINY_OVERRIDES, f"data.root={empty}", f"paths.root_dir={tmp_path}"], cwd=tmp_path)
    assert result.returncode != 0
    assert str(empty) in result.stdout + result.stderr


def test_coarse_to_fine_net_gets_a_coarse_loss_with_the_plain_module(tiny_train_config):
    cfg = tiny_train_config("model=gated_ca", "loss=deepfill", "debug=fast_dev_run")
    metrics = train(cfg)
    assert "train/coarse_hole_l1" in metrics and metrics["train/coarse_hole_l1"] > 0
