"""The package works installed, not only from this checkout: from any folder (even one holding an ``inpainting/``
data folder) and from a built wheel, where ``conf/`` travels as package data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("train", "evaluate", "predict", "export", "demo")


def _env_without_checkout() -> dict[str, str]:
    """The user's environment: the installed package only (no PYTHONPATH pointing at this checkout)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "WANDB_MODE": "offline", "GRADIO_ANALYTICS_ENABLED": "False", "HYDRA_FULL_ERROR": "0"}


def _write_pair(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    image = folder / "photo.png"
    mask = folder / "photo_mask.png"
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(image)
    hole = np.zeros((40, 48), np.uint8)
    hole[10:20, 12:30] = 255
    Image.fromarray(hole).save(mask)
    return image, mask


def test_pyproject_lists_every_package_folder_and_maps_conf():
    """The explicit package list (needed by the conf/ mapping) must not miss a new subpackage."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "inpainting").rglob("__init__.py")}
    assert set(tool["packages"]) == on_disk | {"inpainting.conf"}
    assert tool["package-dir"] == {"inpainting.conf": "conf"}
    shipped = tool["package-data"]["inpainting.conf"]
    assert "*.yaml" in shipped and "**/*.yaml" in shipped


def test_predict_runs_from_a_folder_holding_an_inpainting_data_folder(tmp_path):
    """`python -m` puts the working folder first on sys.path; an `inpainting/data/` folder there (a user's data, or
    the parent of a clone) must not shadow the installed package as a namespace package."""
    (tmp_path / "inpainting" / "data" / "sample").mkdir(parents=True)
    image, mask = _write_pair(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "inpainting.predict", f"input={image}", f"mask={mask}", "output=out.png"],
        cwd=tmp_path,
        env=_env_without_checkout(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    hint = "reinstall with `make install` (editable_mode=compat puts a real path entry on sys.path)"
    assert proc.returncode == 0, f"{hint}\n{proc.stderr[-3000:]}"
    assert Image.open(tmp_path / "out.png").size == (48, 40)


@pytest.mark.slow
def test_wheel_ships_conf_and_every_entry_point_runs_from_it(tmp_path):
    """Build the wheel from a copy of the sources, install it into a folder, and run every entry point from an
    unrelated folder with only that install on the path (Hydra must find conf/ inside the package)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "inpainting", src / "inpainting", ignore=ignore)
    shutil.copytree(ROOT / "conf", src / "conf", ignore=ignore)
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("inpainting-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-compile", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert (target / "inpainting" / "conf" / "train.yaml").is_file()
    assert (target / "inpainting" / "conf" / "model" / "sa_unet.yaml").is_file()
    assert (target / "inpainting" / "weights" / "sa_unet_default.pt").is_file()

    work = tmp_path / "work"
    work.mkdir()
    env = {
        **_env_without_checkout(),
        "PYTHONPATH": str(target),
    }  # first on sys.path: the wheel, not the checkout

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )

    where = run("-c", "import inpainting.resources as r; print(r.conf_dir())")
    assert where.stdout.strip() == str(target / "inpainting" / "conf"), where.stderr
    for entry in ENTRY_POINTS:
        proc = run("-m", f"inpainting.{entry}", "--help")
        assert proc.returncode == 0, f"{entry}: {proc.stderr[-2000:]}"
        assert "== Config ==" in proc.stdout and "task_name" in proc.stdout, entry
    image, mask = _write_pair(work)
    proc = run("-m", "inpainting.predict", f"input={image}", f"mask={mask}", "output=filled.png")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "filled.png").is_file()
    assert run("-m", "inpainting.make_masks", "--help").returncode == 0
