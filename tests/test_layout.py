"""The package's layering: networks, inference and the public API load without the training stack."""

from __future__ import annotations

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
