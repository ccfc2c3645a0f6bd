"""The package's layering: networks, inference and the public API load without the training stack."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import inpainting
import inpainting.models

TRAINING_STACK = ("lightning", "pytorch_lightning", "hydra", "omegaconf", "wandb")


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
