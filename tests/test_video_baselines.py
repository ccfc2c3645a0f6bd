"""Classical video inpainting: per-frame image baselines, temporal copy, flow-guided propagation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inpainting.errors import ConfigError
from inpainting.evaluation.baselines import telea
from inpainting.evaluation.video_baselines import (
    VIDEO_BASELINES,
    PerFrame,
    TemporalCopy,
    get_video_baseline,
)


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour texture: structure that optical flow can lock on and that a smooth fill cannot guess."""
    noise = np.random.default_rng(seed).uniform(0, 255, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 255, 0, 255).astype(np.uint8)


def moving_hole(
    frames: int, height: int, width: int, top: int, size: int, left: int, step: int
) -> np.ndarray:
    mask = np.zeros((frames, height, width), np.uint8)
    for t in range(frames):
        mask[t, top : top + size, left + step * t : left + step * t + size] = 1
    return mask


def psnr_in_holes(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    error = ((out.astype(np.float64) - truth.astype(np.float64)) ** 2)[mask.astype(bool)].mean()
    return float(10 * np.log10(255.0**2 / max(error, 1e-12)))


def test_temporal_copy_recovers_a_static_clip_exactly():
    frames = np.stack([texture(40, 48)] * 5)
    mask = moving_hole(5, 40, 48, top=10, size=8, left=6, step=8)  # each hidden pixel is seen in other frames
    out = TemporalCopy()(frames, mask)
    np.testing.assert_array_equal(out, frames)
    assert psnr_in_holes(get_video_baseline("telea")(frames, mask), frames, mask) < 30  # not a trivial clip


def test_flow_guided_beats_per_frame_telea_on_a_panned_clip():
    frames_n, size = 5, 64
    canvas = texture(size, size + 3 * frames_n, seed=1)
    frames = np.stack([canvas[:, 3 * t : 3 * t + size] for t in range(frames_n)])  # pans 3 px per frame
    mask = moving_hole(frames_n, size, size, top=20, size=18, left=12, step=6)
    flow = psnr_in_holes(get_video_baseline("flow_guided")(frames, mask), frames, mask)
    per_frame = psnr_in_holes(get_video_baseline("telea")(frames, mask), frames, mask)
    copy = psnr_in_holes(get_video_baseline("temporal_copy")(frames, mask), frames, mask)
    assert flow > per_frame + 10 and flow > copy + 10, (flow, per_frame, copy)


@pytest.mark.parametrize("name", sorted(VIDEO_BASELINES))
def test_never_reads_hidden_pixels_and_keeps_known_ones(name):
    frames_n, size = 3, 32
    canvas = texture(size, size + 2 * frames_n, seed=2)
    frames = np.stack([canvas[:, 2 * t : 2 * t + size] for t in range(frames_n)])
    mask = moving_hole(frames_n, size, size, top=8, size=10, left=6, step=5)
    mask[:, 26:30, 2:6] = 1  # hidden in every frame: only a spatial fill can reach it
    method = get_video_baseline(name)
    out = method(frames, mask)
    scrambled = frames.copy()
    hidden = mask.astype(bool)
    scrambled[hidden] = np.random.default_rng(3).integers(0, 256, (hidden.sum(), 3), dtype=np.uint8)
    np.testing.assert_array_equal(method(scrambled, mask), out)
    np.testing.assert_array_equal(out[~hidden], frames[~hidden])
    assert out.shape == frames.shape and out.dtype == np.uint8


def test_per_frame_takes_a_name_or_an_image_method_and_no_hole_is_a_copy():
    frames = np.stack([texture(16, 16, seed=t) for t in range(2)])
    mask = moving_hole(2, 16, 16, top=4, size=5, left=4, step=3)
    np.testing.assert_array_equal(PerFrame("telea")(frames, mask), PerFrame(telea())(frames, mask))
    np.testing.assert_array_equal(PerFrame(telea())(frames[:1], mask[:1])[0], telea()(frames[0], mask[0]))
    np.testing.assert_array_equal(get_video_baseline("flow_guided")(frames, np.zeros_like(mask)), frames)


def test_bad_names_and_shapes_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="unknown video baseline 'flow'.*flow_guided"):
        get_video_baseline("flow")
    with pytest.raises(ConfigError, match="preset"):
        get_video_baseline("flow_guided", preset="slowest")
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="T x H x W"):
        TemporalCopy()(frames, np.zeros((2, 8, 9), np.uint8))
    with pytest.raises(ValueError, match="uint8 T x H x W x 3"):
        TemporalCopy()(frames[0], np.zeros((8, 8), np.uint8))
