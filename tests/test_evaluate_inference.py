"""The evaluator's speed paths give the same numbers as the plain ones: networks on predict's exact path (batched
crops == ``Inpainter(model)(image, mask)``), baselines in worker processes == in this process; the ``default``
method; progress estimates; protocol runs with FID/LPIPS columns on weight files the tests write."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from inpainting.evaluation.baselines import get_baseline
from inpainting.evaluation.evaluator import BaselinePool, ProgressLog
from inpainting.evaluation.inception import FIDInceptionV3
from inpainting.evaluation.lpips import BACKBONE_FILES, backbone_features
from inpainting.evaluation.mask_sets import mask_set
from inpainting.evaluation.methods import build_method
from inpainting.evaluation.runner import run
from inpainting.evaluation.standard import INCEPTION_FILES, WEIGHTS_ENV
from inpainting.inference import Inpainter, load_model
from inpainting.inference.checkpoint import default_weights_path
from inpainting.inference.inpainter import INFERENCE_DEFAULTS as PREDICT_STRATEGY
from tests.conftest import CONF_DIR, compose_config


def photos(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random images (so fills are not trivially equal) as uint8 N x H x W x 3."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, 4, 4, 3)).astype(np.float32)
    big = torch.nn.functional.interpolate(
        torch.from_numpy(small).permute(0, 3, 1, 2), size=size, mode="bilinear"
    )
    return big.permute(0, 2, 3, 1).round().clamp(0, 255).byte().numpy()


def mixed_masks(count: int, size: int) -> np.ndarray:
    """Thick LaMa masks, one empty mask and small boxes (crops of different shapes, some smaller than the image)."""
    masks = np.stack(mask_set("thick", count, size, size))
    masks[1] = 0
    masks[2] = 0
    masks[2, 5:9, 6:12] = 1
    masks[3] = 0
    masks[3, 2:5, 2:4] = 1
    masks[3, size - 6 : size - 2, size - 9 : size - 3] = 1
    return masks


def test_predict_defaults_are_what_the_evaluator_uses():
    predict = OmegaConf.load(CONF_DIR / "predict.yaml")
    evaluate = OmegaConf.load(CONF_DIR / "evaluate.yaml")
    demo = OmegaConf.load(CONF_DIR / "demo.yaml")
    assert {k: predict[k] for k in PREDICT_STRATEGY} == PREDICT_STRATEGY
    assert dict(evaluate.inference) == PREDICT_STRATEGY
    assert {k: demo[k] for k in PREDICT_STRATEGY} == PREDICT_STRATEGY


@pytest.mark.parametrize("margin", [128, 4])
def test_batched_model_path_equals_predicts_inpainter(margin):
    """The shipped network: batched crops give bit-identical composites to predict's per-image call."""
    model = load_model(None)
    inpainter = Inpainter(model, margin=margin)
    images, masks = photos(6, 48), mixed_masks(6, 48)
    batched = inpainter.fill_batch(images, masks, batch_size=4)
    for image, mask, out in zip(images, masks, batched, strict=True):
        np.testing.assert_array_equal(out, inpainter(image, mask))
    assert np.array_equal(batched[1], images[1])  # empty mask: the image unchanged
    known = masks == 0
    assert np.array_equal(batched[known], images[known])


def test_regions_above_max_side_take_the_inpainters_downscaling_path():
    calls: list[tuple[int, ...]] = []

    def model(masked: np.ndarray, mask: np.ndarray) -> np.ndarray:
        calls.append(masked.shape)
        return np.tanh(masked + mask)  # any deterministic per-pixel function

    inpainter = Inpainter(model, strategy="resize", max_side=16)
    images, masks = photos(4, 32), mixed_masks(4, 32)
    out = inpainter.fill_batch(images, masks, batch_size=8)
    for image, mask, result in zip(images, masks, out, strict=True):
        np.testing.assert_array_equal(result, inpainter(image, mask))
    assert all(shape[-1] <= 16 for shape in calls)


def test_baselines_in_worker_processes_equal_in_process():
    images, masks = photos(4, 40, seed=1), mixed_masks(4, 40)
    pool = BaselinePool(2)
    try:
        for name in ("telea", "patchmatch", "push_pull"):
            fn = get_baseline(name)
            inline = np.stack([fn(i, m) for i, m in zip(images, masks, strict=True)])
            np.testing.assert_array_equal(pool.map(fn, images, masks), inline)
    finally:
        pool.close()


def test_progress_estimates_time_left_from_measured_rates():
    progress = ProgressLog(["a", "b"], [10, 10])
    line = progress.update("a", "thick", 10, 5.0)  # a: 0.5 s/pair; b unmeasured -> the mean, 0.5
    assert line.startswith("[1/4] a on thick: 10 pairs in 5.0 s") and "about 15s left" in line
    line = progress.update("b", "thick", 10, 20.0)  # b: 2 s/pair; left: 10 * 0.5 + 10 * 2
    assert "about 25s left" in line


def test_default_method_is_the_shipped_model(monkeypatch):
    monkeypatch.delenv("INPAINTING_WEIGHTS", raising=False)
    method = build_method("default")
    assert method.name == "default" and method.kind == "model"
    assert isinstance(method.inpaint, Inpainter) and method.inpaint.model.path == default_weights_path()
    assert method.inpaint.strategy == "crop" and method.inpaint.margin == 128
    assert build_method("mine@default").name == "mine"


@pytest.fixture
def metric_weights(tmp_path, monkeypatch):
    """Random weights under the real file names, found through $INPAINTING_METRIC_WEIGHTS."""
    folder = tmp_path / "metric_weights"
    folder.mkdir()
    torch.manual_seed(0)
    torch.save(FIDInceptionV3().state_dict(), folder / INCEPTION_FILES[0])
    for net, name in BACKBONE_FILES.items():
        state = backbone_features(net).state_dict()
        torch.save({f"features.{k}": v for k, v in state.items()}, folder / name)
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return folder


def read_rows(path: Path) -> list[dict]:
    with open(path) as file:
        return list(csv.DictReader(file))


def test_protocol_run_writes_the_papers_layout_with_fid_and_lpips(
    tmp_path, image_folder, metric_weights, monkeypatch
):
    # plumbing test: Inception at 75 x 75 (its smallest input) instead of 299, 16x less work on 2 CPU cores
    monkeypatch.setattr("inpainting.evaluation.inception.INPUT_SIZE", 75)
    cfg = compose_config(
        tmp_path,
        [
            "protocol=lama",
            "data=folder",
            f"data.root={image_folder}",
            "image_size=32",
            "mask_sets=[thin,thick]",
            "vgg_weights=null",
            "workers=1",
            "max_images=3",
            "methods=[telea,default]",
        ],
        config_name="evaluate",
    )
    try:
        files = run(cfg)
    finally:
        GlobalHydra.instance().clear()
    rows = read_rows(files["results"])
    assert len(rows) == 3 * 2 * 2 and {"lpips_alex", "lpips_vgg"} <= set(rows[0])
    assert all(float(r["lpips_vgg"]) >= 0 for r in rows)
    protocol = files["protocol"].read_text()
    assert "# Protocol: LaMa" in protocol
    header = next(line for line in protocol.splitlines() if line.startswith("| method"))
    assert header.startswith("| method | thin FID ↓ | thin LPIPS-alex ↓ | thin LPIPS-vgg ↓ | thin PSNR ↑")
    assert "| thick FID ↓" in header and "left out" not in protocol
    assert "default: predict's path: strategy=crop, margin=128" in protocol
    summary = files["summary"].read_text()
    assert "## FID (Inception-v3 pool features, 2015 TF weights)" in summary
    assert "| method | thin (n=3) | thick (n=3) | all (n=6) |" in summary
    assert "## LPIPS v0.1, AlexNet ↓" in summary and str(metric_weights) in summary
    assert "inception_fid" in files["summary"].with_name("fid.json").read_text()


def test_protocol_without_weights_says_what_was_left_out(tmp_path, image_folder, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    cfg = compose_config(
        tmp_path,
        ["protocol=pconv", "data=folder", f"data.root={image_folder}", "image_size=32", "vgg_weights=null"]
        + ["mask_sets=[area_10-20]", "masks_per_image=1", "methods=[telea]", "max_images=3"],
        config_name="evaluate",
    )
    try:
        files = run(cfg)
    finally:
        GlobalHydra.instance().clear()
    protocol = files["protocol"].read_text()
    assert "left out (weights missing, see README › Evaluate): lpips_alex, fid" in protocol
    assert "| method | area_10-20 L1 ↓ | area_10-20 PSNR ↑ | area_10-20 SSIM ↑ |" in protocol
    assert len(read_rows(files["results"])) == 3


@pytest.mark.parametrize("cache_bytes", [2 << 30, 0])
def test_vgg_distance_with_cached_truth_features_equals_feature_distance(cache_bytes):
    """Ground-truth features computed once per set (or recomputed when over the cache) give feature_distance."""
    from inpainting.evaluation.evaluator import FeatureMetrics, _to_unit
    from inpainting.models.vgg import VGG16Features, feature_distance

    torch.manual_seed(0)
    vgg = VGG16Features(layers=FeatureMetrics.DISTANCE_LAYERS)
    metrics = FeatureMetrics(vgg, cache_bytes=cache_bytes)
    truth = _to_unit(photos(3, 32, seed=2))
    owners = np.array([0, 0, 1, 2, 2])
    pred = _to_unit(photos(5, 32, seed=3))
    metrics.begin_set(truth, owners, batch_size=2)
    distances = metrics.update("m", pred, batch_size=2)
    expected = feature_distance(pred, truth[torch.from_numpy(owners)], vgg)
    np.testing.assert_allclose(distances, expected.double().numpy(), rtol=1e-5, atol=1e-7)
    assert set(metrics.fid()) == {"m"}
