"""Inference: generator files, padding, crop/resize strategies, bit-identical paste-back, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inpainting.inference import Inpainter, checkpoint, load_model
from inpainting.inference.checkpoint import (
    GENERATOR_FORMAT,
    CheckpointError,
    default_weights_path,
    load_generator,
    save_generator,
)
from inpainting.inference.inpainter import PaddedGenerator, from_module, hole_boxes, pad_multiple
from inpainting.models.sa_unet import SAUNet

TINY_CONFIG = {
    "_target_": "inpainting.models.sa_unet.SAUNet",
    "base_channels": 8,
    "num_heads": 2,
    "window_size": 4,
}


def tiny_net(seed: int = 0, **overrides) -> SAUNet:
    """A tiny sa_unet whose attention gates are open, so attention shapes the output (untrained weights)."""
    torch.manual_seed(seed)
    net = SAUNet(**{k: v for k, v in {**TINY_CONFIG, **overrides}.items() if k != "_target_"})
    for module in net.modules():
        if hasattr(module, "gamma"):
            torch.nn.init.constant_(module.gamma, 0.5)
    return net.eval()


def tiny_generator_file(path: Path, seed: int = 0) -> Path:
    """Write a tiny generator file (what inpainting/weights/sa_unet_default.pt is, at test size)."""
    return save_generator(tiny_net(seed), TINY_CONFIG, path, {"note": "tiny test model"})


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / max(width, 1), yy * 255 / max(height, 1), (xx + yy) % 256], -1)
    return np.clip(base + rng.integers(-20, 20, (height, width, 3)), 0, 255).astype(np.uint8)


def holes(height: int, width: int, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    for top, left, bottom, right in boxes:
        mask[top:bottom, left:right] = 1
    return mask


class Recorder:
    """A fake model that records the sizes it is run at and returns mid-grey."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def __call__(self, masked_image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.sizes.append(masked_image.shape[-2:])
        assert np.all(masked_image[mask.repeat(3, 1) == 1] == 0), "holes must reach the model zeroed"
        return np.zeros_like(masked_image)


# ------------------------------------------------------------------------------------------------------------
# generator files
# ------------------------------------------------------------------------------------------------------------


def test_generator_file_round_trip(tmp_path):
    net = tiny_net()
    path = save_generator(net, TINY_CONFIG, tmp_path / "sub" / "g.pt", {"step": 3})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == GENERATOR_FORMAT and raw["version"] == 1
    assert set(raw) == {"format", "version", "model", "state_dict", "metadata"}
    loaded, config = load_generator(path)
    assert config == {"model": TINY_CONFIG, "metadata": {"step": 3}, "weights": "raw"}
    x, m = torch.rand(1, 3, 24, 40) * 2 - 1, (torch.rand(1, 1, 24, 40) > 0.5).float()
    with torch.no_grad():
        assert torch.equal(net(x * (1 - m), m), loaded(x * (1 - m), m))
    assert path.stat().st_size < 1e6


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"version": 2}, "version 2.*version 1 only"),
        ({"format": "something-else"}, "format 'something-else'"),
        ({"model": {**TINY_CONFIG, "_target_": "os.system"}}, "refusing to build 'os.system'"),
        ({"model": {**TINY_CONFIG, "no_such_argument": 1}}, "another version of inpainting"),
        ({"state_dict": {}}, "do not fit"),
    ],
)
def test_generator_file_from_another_version_is_a_clear_error(tmp_path, change, match):
    path = tiny_generator_file(tmp_path / "g.pt")
    raw = torch.load(path, weights_only=True)
    torch.save({**raw, **change}, path)
    with pytest.raises(CheckpointError, match=match):
        load_model(path)


def test_default_weights_path_and_missing_file(tmp_path, monkeypatch):
    assert default_weights_path() == Path(checkpoint.__file__).parents[1] / "weights" / "sa_unet_default.pt"
    monkeypatch.setattr(checkpoint, "DEFAULT_WEIGHTS", tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt.*inpainting.export"):
        load_model(None)
    tiny_generator_file(tmp_path / "missing.pt")
    assert load_model(None).path == tmp_path / "missing.pt"
    monkeypatch.setenv(checkpoint.DEFAULT_WEIGHTS_ENV, str(tmp_path / "elsewhere.pt"))
    with pytest.raises(FileNotFoundError, match="elsewhere.pt"):
        load_model(None)


# ------------------------------------------------------------------------------------------------------------
# padding
# ------------------------------------------------------------------------------------------------------------


def test_pad_multiple_covers_downsampling_and_key_pooling():
    assert pad_multiple(tiny_net()) == 8  # 2 downsamplings x kv_pool 2
    assert pad_multiple(tiny_net(kv_pool=1)) == 4
    assert pad_multiple(tiny_net(attention=["none", "none", "none"])) == 4


@pytest.mark.parametrize("size", [(301, 517), (17, 900), (1, 1), (40, 88)])
def test_padded_generator_any_size_and_identity_when_aligned(size):
    net = tiny_net()
    padded = PaddedGenerator(net)
    x, m = torch.rand(1, 3, *size) * 2 - 1, (torch.rand(1, 1, *size) > 0.5).float()
    with torch.no_grad():
        out = padded(x * (1 - m), m)
        assert out.shape == (1, 3, *size) and torch.isfinite(out).all()
        if size[0] % 8 == 0 and size[1] % 8 == 0:
            assert torch.equal(out, net(x * (1 - m), m))


# ------------------------------------------------------------------------------------------------------------
# Inpainter
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["crop", "resize", "full"])
@pytest.mark.parametrize("size", [(301, 517), (17, 900)])
def test_known_pixels_bit_identical_at_odd_sizes(strategy, size):
    image = photo(*size)
    mask = holes(*size, [(3, 5, 12, 40), (size[0] - 9, size[1] - 30, size[0], size[1])])
    out = Inpainter(from_module(tiny_net()), strategy, max_side=128, margin=16)(image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert not np.array_equal(out[mask == 1], image[mask == 1])


def test_crop_runs_each_hole_at_native_resolution_with_margin():
    recorder = Recorder()
    image, mask = photo(300, 500), holes(300, 500, [(100, 100, 120, 130), (5, 400, 25, 420)])
    out = Inpainter(recorder, "crop", max_side=1024, margin=10)(image, mask)
    assert sorted(recorder.sizes) == [(35, 40), (40, 50)]  # bbox + 10 px each side, clipped at the top
    assert np.all(out[mask == 1] == 128) and np.array_equal(out[mask == 0], image[mask == 0])


def test_crop_merges_overlapping_context_and_falls_back_to_resize_when_too_large():
    assert hole_boxes(holes(100, 100, [(10, 10, 20, 20), (25, 25, 30, 30)]), margin=5) == [(5, 5, 35, 35)]
    recorder = Recorder()
    image, mask = photo(600, 900), holes(600, 900, [(50, 50, 550, 850)])
    Inpainter(recorder, "crop", max_side=256, margin=20)(image, mask)
    assert recorder.sizes == [(165, 256)]  # the 540 x 840 crop, downscaled to max_side


def test_resize_strategy_downscales_the_whole_photo_and_pastes_holes_only():
    recorder = Recorder()
    image, mask = photo(1536, 2048), holes(1536, 2048, [(700, 900, 760, 1000)])
    out = Inpainter(recorder, "resize", max_side=512)(image, mask)
    assert recorder.sizes == [(384, 512)]
    assert np.array_equal(out[mask == 0], image[mask == 0])
    recorder.sizes.clear()
    Inpainter(recorder, "resize", max_side=4096)(image, mask)  # small enough: native
    assert recorder.sizes == [(1536, 2048)]


def test_all_zero_mask_returns_the_input_and_logs(caplog):
    recorder = Recorder()
    image = photo(20, 30)
    with caplog.at_level("INFO", logger="inpainting.inference"):
        out = Inpainter(recorder)(image, np.zeros((20, 30), np.uint8))
    assert np.array_equal(out, image) and out is not image
    assert recorder.sizes == [] and "no hole pixels" in caplog.text


def test_all_one_mask_fills_everything():
    image = photo(33, 47)
    out = Inpainter(from_module(tiny_net()), "crop", max_side=32)(image, np.ones((33, 47), np.uint8))
    assert out.shape == image.shape and not np.array_equal(out, image)


def test_size_mismatch_and_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match=r"image is 30x20 \(WxH\) but its mask is 31x20"):
        Inpainter(Recorder())(photo(20, 30), np.ones((20, 31), np.uint8))
    with pytest.raises(ValueError, match="strategy='tile'"):
        Inpainter(Recorder(), "tile")
