"""Shared fixtures: tiny image folders and in-process composed training configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(autouse=True)
def _no_weight_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluation fetches missing FID/LPIPS weights; the suite never reaches the network (subprocesses included,
    as they inherit the variable). tests/test_metric_weights_download.py lifts it against a local server."""
    monkeypatch.setenv("INPAINTING_OFFLINE", "1")


# Small enough for 2 CPU cores: 32x32 crops, 8-channel networks, 2 images per batch.
TINY_OVERRIDES = [
    "data=folder",
    "data.image_size=32",
    "data.batch_size=2",
    "data.num_workers=0",
    "model.base_channels=8",
    "logger=csv",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.num_sanity_val_steps=0",
]


def write_tiny_images(
    folder: Path, count: int = 6, size: tuple[int, int] = (48, 56), seed: int = 0
) -> list[Path]:
    """Write ``count`` small smooth colour images (gradients + a disc) so inpainting has structure."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(count):
        base = rng.uniform(0, 255, size=3)
        image = np.stack(
            [(base[c] + 60 * np.sin(xx / (5 + i + c)) + 40 * np.cos(yy / 7)) for c in range(3)], -1
        )
        image = np.clip(image, 0, 255).astype(np.uint8)
        cv2.circle(
            image, (int(rng.integers(8, width - 8)), int(rng.integers(8, height - 8))), 6, (255, 255, 0), -1
        )
        path = folder / f"img_{i:02d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    write_tiny_images(folder)
    return folder


def compose_config(
    tmp_path: Path, overrides: list[str] | None = None, config_name: str = "train"
) -> DictConfig:
    """Compose a conf/ entry config in-process as `python -m inpainting.<entry>` would, outputs in tmp_path."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, return_hydra_config=True, overrides=overrides or [])
        with open_dict(cfg):
            cfg.paths.root_dir = str(tmp_path)
            cfg.paths.data_dir = str(tmp_path / "data")
            cfg.paths.log_dir = str(tmp_path / "logs")
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.work_dir = str(tmp_path)
            cfg.hydra.runtime.output_dir = str(tmp_path / "run")
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # as under @hydra.main, the task sees its config without the hydra node
    return cfg


@pytest.fixture
def tiny_train_config(tmp_path: Path, image_folder: Path):
    """A factory: ``tiny_train_config(*overrides)`` -> a composed config training on tiny images."""

    def make(*overrides: str) -> DictConfig:
        return compose_config(tmp_path, [*TINY_OVERRIDES, f"data.root={image_folder}", *overrides])

    yield make
    GlobalHydra.instance().clear()


def run_cli(args: list[str], cwd: Path, entry: str = "inpainting.train", full_error: bool = False):
    """Run ``python -m <entry> args`` as a user would (offline wandb, this checkout on the path)."""
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "HYDRA_FULL_ERROR": "1" if full_error else "0",
        "PYTHONPATH": str(CONF_DIR.parent),
    }
    return subprocess.run(
        [sys.executable, "-m", entry, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
