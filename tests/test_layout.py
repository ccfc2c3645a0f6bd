"""The package's layering: networks, inference and the public API load without the training stack."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import inpainting
import inpainting.models

TRAINING_STACK = ("lightning", "pytorch_lightning", "hydra", "omegaconf", "wandb")
#: what predict, export, the demo and an evaluation of classical methods start without (seconds each to import)
SLOW_TO_IMPORT = ("lightning", "pytorch_lightning", "wandb", "albumentations")
ROOT = Path(__file__).resolve().parents[1]


def _imported_after(modules: list[str]) -> set[str]:
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in modules)
        + "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("package", ["inpainting.models", "inpainting.inference", "inpainting"])
def test_no_lightning_or_hydra_below_the_training_layer(package):
    modules = [package]
    if package == "inpainting.models":
        modules += [f"inpainting.models.{m.name}" for m in pkgutil.iter_modules(inpainting.models.__path__)]
    loaded = _imported_after(modules)
    assert not loaded & set(TRAINING_STACK), f"{package} pulls in {sorted(loaded & set(TRAINING_STACK))}"


def test_public_api_is_importable_from_the_top():
    for name in inpainting.__all__:
        assert getattr(inpainting, name) is not None, name


PACKAGES = ["data", "models", "losses", "training", "evaluation", "inference"]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_names_a_short_public_api_that_resolves(package):
    module = importlib.import_module(f"inpainting.{package}")
    assert 0 < len(module.__all__) <= 6, module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, f"inpainting.{package}.{name}"


def test_reading_images_and_predicting_start_without_lightning():
    """The data front is lazy: predict (and a script reading an image) never load the training stack."""
    loaded = _imported_after(["inpainting.data", "inpainting.data.images", "inpainting.predict"])
    assert not loaded & {"lightning", "pytorch_lightning"}, sorted(
        loaded & {"lightning", "pytorch_lightning"}
    )


def test_importing_the_training_package_installs_no_warning_filter():
    """Lightning's LeafSpec warning is silenced by a run of train(), not for whoever imports the package."""
    code = (
        "import warnings\nimport inpainting.training.module, inpainting.train\n"
        "print(any('LeafSpec' in (f[1].pattern if f[1] else '') for f in warnings.filters))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("command", ["predict", "export", "demo", "evaluate"])
def test_commands_start_without_lightning_wandb_or_albumentations(command):
    if command == "demo":
        pytest.importorskip("gradio", reason="the demo needs gradio (pip install 'inpainting[demo]')")
    loaded = _imported_after([f"inpainting.{command}"])
    assert not loaded & set(SLOW_TO_IMPORT), (
        f"inpainting.{command} imports {sorted(loaded & set(SLOW_TO_IMPORT))}"
    )


def test_evaluating_classical_methods_on_pairs_runs_without_lightning_or_wandb(tmp_path):
    """The whole command, not only its import: pairs are read without the datamodule (albumentations still
    resizes them: the evaluation transform is the datamodule's)."""
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    image = np.full((40, 48, 3), 120, np.uint8)
    image[:, :24] = 30
    mask = np.zeros((40, 48), np.uint8)
    mask[10:20, 10:30] = 255
    cv2.imwrite(str(pairs / "a.png"), image)
    cv2.imwrite(str(pairs / "a_mask.png"), mask)
    modules = tmp_path / "modules.txt"
    argv = [
        "inpainting.evaluate",
        f"pairs_root={pairs}",
        "methods=[telea]",
        "image_size=32",
        "vgg_weights=null",
        "fid=false",
        "lpips=false",
        "workers=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    code = (
        "import atexit, runpy, sys\n"
        f"atexit.register(lambda: open({str(modules)!r}, 'w').write("
        "' '.join(sorted({m.split('.')[0] for m in sys.modules}))))\n"
        f"sys.argv = {argv!r}\n"
        "runpy.run_module('inpainting.evaluate', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "TORCH_HOME": str(tmp_path / "th")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (tmp_path / "run" / "results.csv").is_file()
    loaded = set(modules.read_text().split())
    assert not loaded & {"lightning", "pytorch_lightning", "wandb"}, sorted(loaded & set(SLOW_TO_IMPORT))
