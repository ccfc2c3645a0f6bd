"""bench/gpu_train.sh --smoke: every stage of the lent-GPU training run (install check, train, export, evaluate,
summary) on CPU with tiny photos, so the GPU minutes are spent training; and its options refused by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import write_tiny_images

REPO = Path(__file__).resolve().parents[1]


def run_script(tmp_path: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The script as a user runs it, with this interpreter and OUT/WORK under tmp_path."""
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "WORK": str(tmp_path / "work"),
        "PYTHON": sys.executable,
    }
    return subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_train.sh"), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.slow
def test_smoke_runs_every_stage(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_tiny_images(photos, count=4, size=(80, 100))
    result = run_script(tmp_path, "--smoke", "--photos", str(photos))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    out = tmp_path / "out"
    log = (out / "gpu_train.log").read_text()
    for stage in ("[install]", "[device]", "[photos]", "[train]", "[export]", "[evaluate]", "[summary]"):
        assert stage in log
    assert "skipped: hydra, omegaconf, albumentations" in log  # they import here: no wheels needed
    assert len(list((tmp_path / "work" / "photos").glob("*.jpg"))) == 3  # 1 train / 1 val / 1 test

    generator = torch.load(out / "sa_unet_gpu.pt", map_location="cpu", weights_only=True)
    assert generator["format"] == "inpainting-generator" and generator["metadata"]["global_step"] == 4

    table = (out / "test_table.md").read_text()
    assert all(f"| {row} |" in table for row in ("harmonic", "default", "gpu"))
    summary = (out / "summary.md").read_text()
    assert "card: CPU (--smoke)" in summary and "4 steps (step cap 4;" in summary
    assert "| gpu |" in summary and "trainer.precision=32-true" in summary
    assert (out / "train_metrics.csv").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--minutes", "0"], "--minutes must be a whole number above 0, got '0'"),
        (["--steps", "many"], "--steps must be a whole number above 0, got 'many'"),
        (["--fast"], "unknown option --fast (accepted: --smoke, --minutes N, --steps N, --photos DIR)"),
        (["--smoke", "--photos", "missing"], "--photos missing is not a folder"),
    ],
)
def test_bad_options_are_refused_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_script(tmp_path, *args, timeout=60)
    assert result.returncode != 0
    output = result.stdout + result.stderr  # a stage's error also goes through the log's tee
    assert message in output and "Traceback" not in output


def test_carried_wheels_are_what_the_gpu_image_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """gpu_prepare.sh downloads these: hydra's, albumentations' and their needs, none the GPU image has."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import gpu_payload

    dists = gpu_payload.needed_dists(["3.12", "3.11"])
    assert {"hydra-core", "omegaconf", "antlr4-python3-runtime", "hydra-colorlog", "albumentations"} <= set(
        dists
    )
    assert {"pydantic", "pydantic-core", "albucore"} <= set(dists)
    assert not set(dists) & {"numpy", "scipy", "pyyaml", "opencv-python-headless", "torch", "colorama"}
    assert dists["albumentations"] == "2.0.8"  # the version installed here, as pyproject pins it
