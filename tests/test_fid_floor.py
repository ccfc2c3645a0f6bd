"""A Fréchet distance is printed only on enough pairs: below fid_min_samples / vgg_fid_min_samples the cell is blank
with "n < floor: not reported", in summary.md, protocol.md and fid.json; lowering the floor by config shows it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from inpainting.errors import ConfigError
from inpainting.evaluation.inception import FIDInceptionV3
from inpainting.evaluation.metrics import FID_MIN_SAMPLES, VGG_FID_MIN_SAMPLES
from inpainting.evaluation.report import protocol_markdown
from inpainting.evaluation.runner import run
from inpainting.evaluation.standard import INCEPTION_FILES, WEIGHTS_ENV
from tests.conftest import compose_config

NUMBER = r"-?\d+\.\d\d"


@pytest.fixture
def evaluate(tmp_path, image_folder, monkeypatch):
    """``evaluate(*overrides)`` -> output files of telea on 6 images x 2 mask sets (6 pairs each, 12 pooled),
    with Inception FID on random weights of the real shapes (at 75 x 75, its smallest input: plumbing only)."""
    pytest.importorskip("h5py")  # the default VGG16 weights of the non-standard VGG FID
    folder = tmp_path / "metric_weights"
    folder.mkdir()
    torch.manual_seed(0)
    torch.save(FIDInceptionV3().state_dict(), folder / INCEPTION_FILES[0])
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr("inpainting.evaluation.inception.INPUT_SIZE", 75)
    common = ["data=folder", f"data.root={image_folder}", "image_size=32", "methods=[telea]", "workers=1"]
    common += ["mask_sets=[thin,thick]", "masks_per_image=1", "lpips=false", "vgg_weights=default"]

    def make(*overrides: str) -> dict[str, Path]:
        out = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
        try:
            return run(compose_config(tmp_path, [*common, f"paths.output_dir={out}", *overrides], "evaluate"))
        finally:
            GlobalHydra.instance().clear()

    return make


def fid_rows(summary: str) -> tuple[str, str]:
    """The telea rows of the standard FID table and of the VGG FID table."""
    standard = summary.split("## FID (Inception-v3")[1].split("\n## ")[0]
    vgg = summary.split("## FID (VGG, non-standard)")[1]
    return next(x for x in standard.splitlines() if x.startswith("| telea")), next(
        x for x in vgg.splitlines() if x.startswith("| telea")
    )


def test_few_pairs_print_no_frechet_distance_only_the_note(evaluate):
    files = evaluate()
    summary = files["summary"].read_text()
    standard, vgg = fid_rows(summary)
    assert "| method | thin (n=6) | thick (n=6) | all (n=12) |" in summary
    assert standard == "| telea |  |  |  |" and vgg == "| telea |  |"
    assert f"n < {FID_MIN_SAMPLES}: not reported" in summary
    assert f"n < {VGG_FID_MIN_SAMPLES}: not reported" in summary
    # the VGG variant is labelled wherever it is printed beside the standard metrics
    assert "## FID (VGG, non-standard) on" in summary and "(VGG, non-standard, not Inception FID)" in summary
    saved = json.loads(files["summary"].with_name("fid.json").read_text())
    assert saved["inception_fid"] == {} and saved["fid"] == {}
    assert saved["inception_fid_not_reported_n"] == {"telea/thin": 6, "telea/thick": 6, "telea/all": 12}
    assert saved["not_reported_n"] == {"telea": 12}


def test_a_lowered_floor_prints_the_cells_that_reach_it(evaluate):
    files = evaluate("fid_min_samples=10", "vgg_fid_min_samples=12")
    summary = files["summary"].read_text()
    standard, vgg = fid_rows(summary)
    # per cell: the sets (n = 6) stay blank, all sets pooled (n = 12) reaches the floor of 10
    assert re.fullmatch(rf"\| telea \|  \|  \| {NUMBER} \|", standard), standard
    assert re.fullmatch(rf"\| telea \| {NUMBER} \|", vgg), vgg
    assert "n < 10: not reported" in summary and "n < 12" not in summary
    saved = json.loads(files["summary"].with_name("fid.json").read_text())
    assert list(saved["inception_fid"]) == ["telea/all"] and list(saved["fid"]) == ["telea"]


@pytest.mark.parametrize("override", ["fid_min_samples=0", "vgg_fid_min_samples=many", "fid_min_samples=1.5"])
def test_a_floor_that_is_not_a_positive_count_is_refused(evaluate, override):
    with pytest.raises(ConfigError, match=override.split("=")[0] + ".*positive whole number"):
        evaluate(override)


def test_protocol_table_blanks_fid_below_the_floor_and_says_so():
    rows = [
        {"method": m, "mask_set": s, "psnr": 20.0, "ssim": 0.5} for m in ("a", "b") for s in ("thin", "thick")
    ]
    fid = {(m, s): 12.3456 for m in ("a", "b") for s in ("thin", "thick")}
    below = protocol_markdown(rows, fid, "p", ["fid", "psnr"])
    assert "| a |  | 20.00 |  | 20.00 |" in below
    assert f"- blank FID cells: n < {FID_MIN_SAMPLES}: not reported" in below and "12.35" not in below
    shown = protocol_markdown(rows, fid, "p", ["fid", "psnr"], fid_min_samples=1)
    assert "| a | 12.35 | 20.00 | 12.35 | 20.00 |" in shown and "not reported" not in shown
