"""Evaluation tables that one near-exact pair cannot carry, and the non-standard VGG extras opt-in.

A pair at the 100 dB PSNR cap lifts a bucket's mean of per-pair PSNR by tens of dB at small n; the summary prints
the PSNR of the pooled MSE beside each mean and the median paired difference beside each mean difference.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from inpainting.evaluation.metrics import MAX_PSNR
from inpainting.evaluation.report import pooled_psnr, summary_markdown
from inpainting.evaluation.runner import run
from tests.conftest import compose_config

SIZE = 32
FAST = [f"image_size={SIZE}", "workers=1", "fid=false", "lpips=false"]


@pytest.fixture
def evaluate_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("INPAINTING_METRIC_WEIGHTS", raising=False)

    def make(*overrides: str):
        return compose_config(tmp_path, [*FAST, *overrides], config_name="evaluate")

    yield make
    GlobalHydra.instance().clear()


def read_rows(path: Path) -> list[dict]:
    with open(path) as file:
        return list(csv.DictReader(file))


def pooled_cell(summary: str, method: str) -> tuple[float, float]:
    """(mean, pooled) of ``method``'s first PSNR cell in the summary's bucket table."""
    psnr = summary.split("## PSNR")[1].split("By hole-area bucket")[1]
    line = next(row for row in psnr.splitlines() if row.startswith(f"| {method} |"))
    mean, pooled = re.search(r"\| ([\d.]+)(?: ± [\d.]+)? \(pooled ([\d.]+)\)", line).groups()
    return float(mean), float(pooled)


def rows_with_one_exact_pair() -> list[dict]:
    """Ten pairs in one bucket: ``b`` at 30 dB; ``a`` 0.5 dB better on nine, exact (capped) on the tenth."""
    rows = []
    for i in range(10):
        common = {"image": f"img{i}", "mask_set": "thick", "mask_index": 0, "bucket": "30-40"}
        a = MAX_PSNR if i == 9 else 30.5
        rows.append({**common, "method": "a", "psnr": a, "ssim": 0.9, "l1": 0.01, "l1_hole": 0.1})
        rows.append({**common, "method": "b", "psnr": 30.0, "ssim": 0.9, "l1": 0.01, "l1_hole": 0.1})
    return rows


def test_an_exact_pair_lifts_the_mean_not_the_pooled_psnr_nor_the_median_difference():
    summary = summary_markdown(rows_with_one_exact_pair(), title="a, b")
    mean, pooled = pooled_cell(summary, "a")
    assert mean == pytest.approx(0.9 * 30.5 + 0.1 * MAX_PSNR, abs=0.01)  # 37.45: carried by one pair
    assert pooled == pytest.approx(30.5 + 10 * np.log10(10 / 9), abs=0.01)  # 30.96: nine pairs' error
    assert pooled_psnr([30.5] * 9) == pytest.approx(30.5)
    assert "mean of per-pair PSNR ± 95% half-width is the headline" in summary
    paired = summary.split("## Paired differences")[1]
    assert "median Δ PSNR" in paired
    line = next(row for row in paired.splitlines() if row.startswith("| 30-40 | b − a |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2].startswith("-7.45 ±")  # the mean difference: one pair's 70 dB over ten
    assert cells[3] == "-0.50"  # the median: what nine pairs of ten say
    assert cells[-1] == "10"


def test_pooled_psnr_is_the_cap_only_when_every_difference_is_invisible():
    assert pooled_psnr([MAX_PSNR, MAX_PSNR]) == MAX_PSNR
    assert pooled_psnr([20.0, 30.0]) == pytest.approx(-10 * np.log10((1e-2 + 1e-3) / 2))
    assert np.isnan(pooled_psnr([]))


def test_exact_pair_through_the_evaluate_command(evaluate_config, tmp_path):
    """Navier-Stokes fills a flat photo exactly (capped 100 dB; Telea is off by a level or two): its pooled cell
    stays with the other pairs' error while its mean is lifted."""
    folder = tmp_path / "pairs"
    folder.mkdir()
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[10:20, 8:22] = 255  # 13.7% of the image: every pair in one bucket
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / f"noise{i}.png")
        Image.fromarray(mask).save(folder / f"noise{i}_mask.png")
    Image.fromarray(np.full((SIZE, SIZE, 3), 120, np.uint8)).save(folder / "flat.png")
    Image.fromarray(mask).save(folder / "flat_mask.png")

    files = run(evaluate_config(f"pairs_root={folder}", "methods=[navier_stokes,telea]"))
    rows = [r for r in read_rows(files["results"]) if r["method"] == "navier_stokes"]
    psnr = {r["image"]: float(r["psnr"]) for r in rows}
    assert psnr["flat_mask"] == MAX_PSNR
    others = [v for k, v in psnr.items() if k != "flat_mask"]
    mean, pooled = pooled_cell(files["summary"].read_text(), "navier_stokes")
    assert mean == pytest.approx(np.mean(list(psnr.values())), abs=0.01)
    assert pooled == pytest.approx(pooled_psnr(others) + 10 * np.log10(4 / 3), abs=0.01)
    assert mean - pooled > 10  # the mean is carried by the exact pair; the pooled MSE is not
    paired = files["summary"].read_text().split("## Paired differences")[1]
    assert "| all |" in paired and "median Δ PSNR" in paired


def test_vgg_extras_are_off_by_default_and_on_when_asked(evaluate_config, image_folder):
    common = ["data=folder", f"data.root={image_folder}", "max_images=2", "masks_per_image=1"]
    common += ["mask_sets=[thick]", "methods=[telea]"]
    default = run(evaluate_config(*common))
    assert "feature_distance" not in read_rows(default["results"])[0]
    assert "non-standard" not in default["summary"].read_text()
    pytest.importorskip("h5py")  # the default VGG16 weights' file format
    asked = run(evaluate_config(*common, "vgg_weights=default"))
    assert "feature_distance" in read_rows(asked["results"])[0]
    assert "feature distance, not LPIPS" in asked["summary"].read_text()
