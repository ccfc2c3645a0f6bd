"""What a new user sees in the first hour: a short header, no empty run dirs, "did you mean", one-line user errors
(but tracebacks for bugs), a varied validation split of the embedded sample, and runs without stray warnings."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import compose_config, run_cli
from hydra.errors import InstantiationException
from hydra.utils import instantiate

import inpainting
from inpainting.cli.errors import exit_on_user_error, is_user_error
from inpainting.cli.header import print_run_header
from inpainting.cli.hints import unknown_key_hint
from inpainting.data.images import ImageReadError, read_image_rgb
from inpainting.errors import ConfigError, InputError, UserError
from inpainting.inference.checkpoint import CheckpointError
from inpainting.models.registry import UnsafeModelConfig
from inpainting.training.fit import quiet_known_warnings
from inpainting.training.loggers import wandb_logger
from inpainting.training.summary import LogIntervalFromData


def _run_dirs(cwd: Path) -> list[Path]:
    runs = cwd / "logs" / "train" / "runs"
    return sorted(runs.iterdir()) if runs.is_dir() else []


def test_typo_in_a_key_gets_did_you_mean_and_no_run_dir(tmp_path):
    proc = run_cli(["data.batchsize=8", "logger=none"], cwd=tmp_path)
    assert proc.returncode == 1
    assert "did you mean `batch_size`?" in proc.stderr
    assert not (tmp_path / "logs").exists()


def test_unknown_key_hint_top_level_and_nested():
    assert "did you mean `seed`?" in unknown_key_hint("train", ["seeed=3"])
    hint = unknown_key_hint("train", ["model=unet", "model.base_chanels=8"])
    assert "`model` has no key `base_chanels`" in hint and "`base_channels`" in hint
    assert "did you mean `threshold`?" in unknown_key_hint("predict", ["input=x", "treshold=3"])
    assert unknown_key_hint("train", ["data.batch_size=3", "model=unet"]) is None  # valid: no hint
    assert unknown_key_hint("train", ["model=no_such_model"]) is None  # Hydra's own message lists options


def test_config_error_is_one_line_and_leaves_no_run_dir(tmp_path):
    proc = run_cli(["data.image_size=-1", "logger=none"], cwd=tmp_path)
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "ValueError: image_size must be a positive integer" in output and "(config `data`)" in output
    assert "Traceback" not in output and "InstantiationException" not in output
    assert _run_dirs(tmp_path) == []
    assert not (tmp_path / "logs").exists()  # the parents it created are gone too


def test_header_is_short_and_the_tree_goes_to_the_run_dir(tmp_path, capsys, caplog):
    cfg = compose_config(tmp_path, ["model=unet"])
    with caplog.at_level(logging.INFO, logger="inpainting.cli.header"):
        print_run_header(cfg)
    header = [r.getMessage() for r in caplog.records]
    assert header[0] == "task     train"
    assert header[1].startswith("model    unet (")
    assert header[2].startswith("data     sample: ") and "128px" in header[2] and "batch 4" in header[2]
    assert header[3] == f"run dir  {tmp_path / 'run'}"
    assert "CONFIG" not in capsys.readouterr().out  # the tree is not printed ...
    tree = (tmp_path / "run" / "config_tree.log").read_text()
    assert "optimizer" in tree and "lr" in tree  # ... but saved whole

    verbose = compose_config(tmp_path, ["verbose=true"])
    print_run_header(verbose)
    assert "CONFIG" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConfigError("threshold=300 must be in 0..255"), True),
        (ImageReadError("x.png", "truncated"), True),
        (FileNotFoundError("input=nope.png: no such file"), True),
        (ModuleNotFoundError("No module named 'onnx'", name="onnx"), True),  # an optional extra
        (ValueError("operands could not be broadcast"), False),  # a bug: keeps its traceback
        (KeyError("net"), False),
        (OSError("[Errno 5] Input/output error"), False),
        (
            ModuleNotFoundError(
                "No module named 'inpainting.data.datasets'", name="inpainting.data.datasets"
            ),
            False,
        ),
    ],
)
def test_user_errors_are_told_apart_from_bugs(error, expected):
    assert is_user_error(error) is expected


def test_instantiation_errors_are_the_users_when_a_constructor_refuses_a_value():
    try:
        raise InstantiationException("Error in call to target") from ValueError("image_size must be positive")
    except InstantiationException as wrapped:
        assert is_user_error(wrapped)
    try:
        raise InstantiationException("Error in call to target") from AttributeError(
            "'NoneType' has no 'shape'"
        )
    except InstantiationException as wrapped:
        assert not is_user_error(wrapped)


def test_every_error_class_of_the_package_is_a_user_error():
    """One family: the entry points catch UserError, so each error class of the package must derive from it
    (keeping its built-in base, so an ``except ValueError`` still catches it)."""
    classes = []
    for info in pkgutil.walk_packages(inpainting.__path__, "inpainting."):
        if info.name == "inpainting.demo":  # needs gradio, an extra
            continue
        module = importlib.import_module(info.name)
        classes += [
            c
            for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, Exception) and c.__module__ == info.name
        ]
    assert len(classes) >= 15, classes
    assert [c.__qualname__ for c in classes if not issubclass(c, UserError)] == []
    assert issubclass(CheckpointError, ValueError) and issubclass(UnsafeModelConfig, ValueError)


def test_exit_on_user_error_exits_1_for_user_errors_and_reraises_bugs():
    with pytest.raises(SystemExit) as exited, exit_on_user_error():
        raise InputError("mask m.png is 3x3 but image i.png is 4x4")
    assert exited.value.code == 1
    with pytest.raises(ZeroDivisionError), exit_on_user_error():
        raise ZeroDivisionError("a bug")
    assert issubclass(ConfigError, ValueError) and issubclass(InputError, ValueError)
    assert issubclass(ImageReadError, UserError)


def test_sample_split_validates_on_several_varied_photos(tmp_path):
    cfg = compose_config(tmp_path)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    val = datamodule.splits["val"]
    assert len(val) >= 3, val
    assert len(datamodule.splits["test"]) >= 1
    assert not any("hubble" in p.name for p in val)  # the near-black deep-field photo says nothing as val
    means = np.array([read_image_rgb(p).reshape(-1, 3).mean(0) for p in val])
    assert (means.mean(1) > 40).all()  # none of them is a dark picture
    assert np.abs(means[:, None] - means[None]).max() > 30  # and they differ in colour


def test_wandb_logger_does_not_pass_the_dead_anonymous_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = wandb_logger(save_dir=str(tmp_path), project="p")
    assert "anonymous" not in logger._wandb_init


def test_log_interval_follows_a_short_epoch():
    loader = [0, 1, 2]
    trainer = SimpleNamespace(
        datamodule=SimpleNamespace(train_dataloader=lambda: loader),
        log_every_n_steps=10,
        limit_train_batches=1.0,
    )
    LogIntervalFromData().on_fit_start(trainer, None)
    assert trainer.log_every_n_steps == 3
    long = SimpleNamespace(
        datamodule=SimpleNamespace(train_dataloader=lambda: list(range(50))),
        log_every_n_steps=10,
        limit_train_batches=1.0,
    )
    LogIntervalFromData().on_fit_start(long, None)
    assert long.log_every_n_steps == 10


def test_a_run_prints_flops_and_no_stray_warnings(tiny_train_config, capsys):
    from inpainting.training.fit import train

    cfg = tiny_train_config("callbacks=default", "trainer.log_every_n_steps=50", "test=true")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()  # train() installs it for its run; installed here too, as before
        train(cfg)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "LeafSpec" in m], messages
    assert not [m for m in messages if "smaller than the logging interval" in m], messages
    out = capsys.readouterr().out
    assert "Total FLOPs" in out and "Total FLOPs: 0 " not in out
