"""An evaluation killed part-way and run again into the same folder gives the same table as one clean run: nothing
half-written by the first attempt survives into the second's results."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CONF_DIR, write_tiny_images


def _evaluate(images: Path, run_dir: Path) -> subprocess.Popen:
    args = [
        "data=folder",
        f"data.root={images}",
        "data.image_size=32",
        "data.num_workers=0",
        "methods=[telea,navier_stokes]",
        "mask_sets=[thin,area_10-20]",
        "masks_per_image=2",
        "vgg_weights=null",
        "logger=none",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(CONF_DIR.parent)}
    return subprocess.Popen(
        [sys.executable, "-m", "inpainting.evaluate", *args],
        cwd=run_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the kill below reaches any worker processes too
    )


def _finish(proc: subprocess.Popen) -> None:
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as file:
        return [
            {k: v for k, v in row.items() if "time" not in k and "second" not in k}
            for row in csv.DictReader(file)
        ]


@pytest.mark.slow
def test_killed_then_rerun_evaluation_matches_a_clean_run(tmp_path):
    images = tmp_path / "images"
    write_tiny_images(images, count=5)
    clean = tmp_path / "clean"
    _finish(_evaluate(images, clean))
    expected = _rows(clean)
    assert len(expected) == 5 * 2 * 2 * 2  # images x mask sets x masks x methods

    rerun = tmp_path / "rerun"
    proc = _evaluate(images, rerun)
    deadline = time.monotonic() + 120
    while not (rerun / ".hydra").is_dir() and time.monotonic() < deadline:  # started: the run dir exists
        time.sleep(0.1)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    # what a kill during the writes could leave: a cut-off table and a stale summary
    (rerun / "results.csv").write_text((clean / "results.csv").read_text()[:200])
    (rerun / "summary.md").write_text("stale\n")

    _finish(_evaluate(images, rerun))
    assert _rows(rerun) == expected
    assert (rerun / "summary.md").read_text() != "stale\n"
