"""`python -m inpainting.evaluate` end to end on tiny data: outputs, determinism, methods, bad input."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra

from inpainting.evaluation.runner import MissingWeightsError, run
from inpainting.inference.checkpoint import CheckpointError
from inpainting.training.fit import train
from tests.conftest import CONF_DIR, compose_config, write_tiny_images

FAST = ["data=folder", "data.image_size=32", "masks_per_image=1", "mask_sets=[thick,area_10-20,area_30-40]"]
FAST += [
    "workers=1"
]  # worker processes take seconds to start; test_two_runs_give_identical_numbers uses them


@pytest.fixture
def eval_config(tmp_path, image_folder, monkeypatch):
    # no metric weights anywhere: a machine with a torch.hub cache must not change what these tests see
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("INPAINTING_METRIC_WEIGHTS", raising=False)

    def make(*overrides: str):
        return compose_config(
            tmp_path,
            [*FAST, f"data.root={image_folder}", "vgg_weights=null", *overrides],
            config_name="evaluate",
        )

    yield make
    GlobalHydra.instance().clear()


def read_rows(path: Path) -> list[dict]:
    with open(path) as file:
        return list(csv.DictReader(file))


def test_baselines_end_to_end_write_csv_summary_plot_and_grids(eval_config):
    cfg = eval_config("methods=[telea,navier_stokes]")
    files = run(cfg)
    rows = read_rows(files["results"])
    images = 6  # the fixture folder, split=all
    assert len(rows) == images * 3 * 2  # images x mask sets x methods
    assert {r["method"] for r in rows} == {"telea", "navier_stokes"}
    assert {r["bucket"] for r in rows if r["mask_set"] == "area_10-20"} == {"10-20"}
    summary = files["summary"].read_text()
    assert "By hole-area bucket" in summary and "| telea |" in summary and "±" in summary
    assert files["plot"].stat().st_size > 0
    grid = cv2.imread(str(Path(cfg.paths.output_dir) / "samples" / "samples_thick.png"))
    assert grid.shape[1] == 32 * 4  # input | telea | navier_stokes | ground truth


def test_two_runs_give_identical_numbers(eval_config, tmp_path):
    first = read_rows(run(eval_config("methods=[telea,patchmatch]"))["results"])
    second_cfg = eval_config(
        "methods=[telea,patchmatch]", "workers=2", f"paths.output_dir={tmp_path / 'again'}"
    )
    second = read_rows(run(second_cfg)["results"])
    assert first == second


def test_non_standard_feature_metrics_are_labelled(eval_config):
    pytest.importorskip("h5py")
    files = run(eval_config("methods=[telea]", "vgg_weights=default"))
    summary = files["summary"].read_text()
    assert "feature distance, not LPIPS" in summary
    assert "non-standard, not Inception FID" in summary
    assert "feature_distance" in read_rows(files["results"])[0]


def test_checkpoint_method_and_model_name_check(eval_config, tiny_train_config):
    train_cfg = tiny_train_config("test=false", "model=unet")
    train(train_cfg)
    ckpt = Path(train_cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    files = run(
        eval_config(f"methods=[telea,unet@ckpt:{ckpt}]", "paths.output_dir=" + str(ckpt.parent / "ev"))
    )
    rows = read_rows(files["results"])
    model_rows = [r for r in rows if r["method"] == "unet"]
    assert model_rows and all(np.isfinite(float(r["psnr"])) for r in model_rows)
    with pytest.raises(CheckpointError, match=r"attention.*sa_unet"):
        run(eval_config(f"methods=[sa_unet@ckpt:{ckpt}]"))


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (["methods=[]"], ValueError, "methods is empty"),
        (["methods=[no_such_method]"], ValueError, "telea"),
        (["methods=[ckpt:/nonexistent/last.ckpt]"], FileNotFoundError, "/nonexistent/last.ckpt"),
        (["fid_weights=/nowhere/pt_inception.pth"], MissingWeightsError, "/nowhere/pt_inception.pth"),
        (["fid=true"], MissingWeightsError, "pt_inception-2015-12-05-6726825d.pth.*torch_home"),
        (["lpips=true"], MissingWeightsError, "LPIPS.*alexnet-owt-7be5be79.pth"),
    ],
)
def test_bad_input_is_a_clear_error(eval_config, overrides, error, match):
    with pytest.raises(error, match=match):
        run(eval_config(*overrides))


def test_user_pairs_with_mixed_sizes_and_missing_masks(eval_config, tmp_path):
    pairs = tmp_path / "pairs"
    paths = write_tiny_images(pairs, count=2, size=(40, 60))
    write_tiny_images(pairs / "big", count=1, size=(70, 50))
    for path in [*paths, pairs / "big" / "img_00.png"]:
        image = cv2.imread(str(path))
        mask = np.zeros(image.shape[:2], np.uint8)
        mask[10:20, 10:25] = 255
        cv2.imwrite(str(path.with_name(path.stem + "_mask.png")), mask)
    files = run(eval_config("methods=[telea]", f"pairs_root={pairs}"))
    rows = read_rows(files["results"])
    assert len(rows) == 3 and {r["mask_set"] for r in rows} == {"pairs"}

    (pairs / "img_00_mask.png").unlink()
    with pytest.raises(ValueError, match="images without a mask.*img_00.png"):
        run(eval_config("methods=[telea]", f"pairs_root={pairs}"))


def test_cli_reports_errors_without_traceback(tmp_path, image_folder):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inpainting.evaluate",
            *FAST,
            f"data.root={image_folder}",
            "methods=[]",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        cwd=CONF_DIR.parent,
        timeout=300,
    )
    assert result.returncode != 0
    assert "methods is empty" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_make_masks_exports_the_evaluation_sets(tmp_path):
    from inpainting.data.images import read_mask
    from inpainting.evaluation.evaluator import EvalImage, attach_mask_sets
    from inpainting.make_masks import main as make_masks

    (folder,) = make_masks(["thick", "--count", "3", "--size", "32", "--out", str(tmp_path)])
    exported = [read_mask(p) for p in sorted(folder.glob("mask_*.png"))]
    images = [EvalImage(f"i{j}", np.zeros((32, 32, 3), np.uint8)) for j in range(3)]
    attach_mask_sets(images, ["thick"], masks_per_image=1, seed=0)
    assert all(np.array_equal(e, item.masks["thick"][0]) for e, item in zip(exported, images, strict=True))
