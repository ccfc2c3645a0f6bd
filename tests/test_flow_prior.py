"""The flow-guided first guess: propagation along OpenCV's flow, its still-camera test, and the video net on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inpainting.errors import ConfigError
from inpainting.evaluation.video_baselines import FlowGuided, TemporalCopy, get_video_baseline
from inpainting.inference.checkpoint import load_generator, save_generator
from inpainting.inference.export import export
from inpainting.models.fill_prior import nearest_visible_fill
from inpainting.models.flow_prior import flow_fill
from inpainting.models.sa_unet import SAUNet
from inpainting.models.sa_unet_video import SAUNetVideo
from tests.test_video_baselines import moving_hole, psnr_in_holes, texture

TINY = {"base_channels": 8, "num_heads": 2, "window_size": 4, "attention_gate_init": 1.0, "kv_grid": 4}


def panned_clip(
    frames: int = 5, size: int = 64, step: int = 3, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """A textured scene panned ``step`` px per frame under a hole that moves faster: every hidden place is shown
    by another frame, but at another position."""
    canvas = texture(size, size + step * frames, seed=seed)
    clip = np.stack([canvas[:, step * t : step * t + size] for t in range(frames)])
    return clip, moving_hole(frames, size, size, top=20, size=18, left=12, step=6)


def to_tensors(frames: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 T x H x W x 3 and T x H x W -> the net's 1 x T x 3 x H x W clip in [-1, 1] (holes zeroed) and mask."""
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 127.5 - 1
    hole = torch.from_numpy(mask)[None, :, None].float()
    return clip * (1 - hole), hole


def to_uint8(clip: torch.Tensor) -> np.ndarray:
    return np.clip(np.rint(clip[0].permute(0, 2, 3, 1).numpy() * 127.5 + 127.5), 0, 255).astype(np.uint8)


def test_flow_fill_follows_a_pan_that_the_nearest_frame_rule_cannot():
    frames, mask = panned_clip()
    clip, hole = to_tensors(frames, mask)
    flow, unseen = flow_fill(clip, hole)
    nearest, _ = nearest_visible_fill(clip, hole)
    seen = mask.astype(bool) & (unseen[0, :, 0].numpy() == 0)
    assert seen.sum() > 0.9 * mask.sum()  # almost every hidden place is propagated
    flow_psnr = psnr_in_holes(to_uint8(flow), frames, seen)
    nearest_psnr = psnr_in_holes(to_uint8(nearest), frames, seen)
    assert flow_psnr > nearest_psnr + 10, (flow_psnr, nearest_psnr)
    assert torch.equal(flow * (1 - hole), clip)  # known pixels untouched
    assert torch.equal(flow * unseen, torch.zeros_like(flow))  # what no frame shows stays empty


def test_flow_fill_never_reads_what_the_mask_hides():
    frames, mask = panned_clip(frames=3, size=32, step=2, seed=2)
    clip, hole = to_tensors(frames, mask)
    scrambled = clip + hole * torch.rand_like(clip)  # hidden pixels changed
    assert torch.equal(flow_fill(scrambled, hole)[0], flow_fill(clip, hole)[0])


def test_a_still_camera_is_copied_exactly_as_temporal_copy_does():
    """Sub-pixel flow noise on a still scene blurs a bilinear sample; below ``still_camera_px`` the pair's flow is
    zero and the propagation is the exact copy from the same place in another frame."""
    frames = np.stack([texture(40, 48, seed=4)] * 5)
    mask = moving_hole(5, 40, 48, top=10, size=8, left=6, step=8)
    still = get_video_baseline("flow_guided_still")(frames, mask)
    np.testing.assert_array_equal(still, TemporalCopy()(frames, mask))
    np.testing.assert_array_equal(still, frames)
    # and the test does not fire on a pan of 3 px per frame
    panned, hole = panned_clip()
    still_on_pan = get_video_baseline("flow_guided_still")(panned, hole)
    np.testing.assert_array_equal(still_on_pan, get_video_baseline("flow_guided")(panned, hole))


def test_the_untrained_flow_net_recovers_a_pan_the_nearest_prior_net_cannot():
    """Zero-initialised head: the untrained net returns its first guess, so the prior alone decides."""
    frames, mask = panned_clip()
    clip, hole = to_tensors(frames, mask)
    config = {**TINY, "fill_prior": True, "fill_prior_relax": 2, "mask_aware": True, "propagated_mask": 0.5}
    scores = {}
    for prior in ("flow", "nearest"):
        torch.manual_seed(0)
        net = SAUNetVideo(**config, temporal_prior=prior).eval()
        with torch.no_grad():
            scores[prior] = psnr_in_holes(to_uint8(net(clip, hole)), frames, mask)
    assert scores["flow"] > scores["nearest"] + 8, scores


def test_temporal_prior_names_are_checked_and_a_flow_net_exports_only_as_a_generator(tmp_path):
    with pytest.raises(ValueError, match="temporal_prior must be true, false or one of none, nearest, flow"):
        SAUNetVideo(**TINY, fill_prior=True, temporal_prior="optical")
    assert SAUNetVideo(**TINY, fill_prior=True, temporal_prior=True).temporal_prior == "nearest"
    assert SAUNetVideo(**TINY, temporal_prior=False).temporal_prior == "none"
    with pytest.raises(ConfigError, match="still_camera_px"):
        FlowGuided(still_camera_px=-1.0)
    config = {
        "_target_": "inpainting.models.sa_unet_video.SAUNetVideo",
        **TINY,
        "fill_prior": True,
        "temporal_prior": "flow",
    }
    net = SAUNetVideo(**{k: v for k, v in config.items() if k != "_target_"}).eval()
    source = tmp_path / "flow.pt"
    save_generator(net, config, source, {"clip_length": 3})
    with pytest.raises(ConfigError, match="temporal_prior=flow.*format=onnx"):
        export(source, "onnx", tmp_path / "flow.onnx")
    assert not (tmp_path / "flow.onnx").exists()
    assert export(source, "generator", tmp_path / "copy.pt").exists()


def test_export_can_give_a_video_net_another_first_guess(tmp_path):
    """No parameter depends on the first guess: export swaps it (and so makes an ONNX file of a flow net), and
    refuses it for an image net or a net without the fill prior."""
    config = {"_target_": "inpainting.models.sa_unet_video.SAUNetVideo", **TINY, "fill_prior": True}
    net = SAUNetVideo(**{k: v for k, v in config.items() if k != "_target_"}, temporal_prior="flow").eval()
    source = tmp_path / "flow.pt"
    save_generator(net, {**config, "temporal_prior": "flow"}, source, {"clip_length": 3})
    nearest = export(source, "generator", tmp_path / "nearest.pt", temporal_prior="nearest")
    loaded, saved = load_generator(nearest)
    assert loaded.temporal_prior == "nearest" and saved["model"]["temporal_prior"] == "nearest"
    weights = net.state_dict()
    assert all(torch.equal(value, weights[key]) for key, value in loaded.state_dict().items())
    assert export(source, "onnx", tmp_path / "nearest.onnx", temporal_prior="nearest").is_file()
    with pytest.raises(ConfigError, match="temporal_prior=optical"):
        export(source, "generator", tmp_path / "bad.pt", temporal_prior="optical")
    plain = SAUNetVideo(**TINY).eval()  # no fill prior: no first guess to swap in
    save_generator(plain, {"_target_": config["_target_"], **TINY}, tmp_path / "plain.pt", {"clip_length": 3})
    with pytest.raises(ConfigError, match="fill_prior"):
        export(tmp_path / "plain.pt", "generator", tmp_path / "bad.pt", temporal_prior="flow")
    image = SAUNet(**TINY).eval()
    save_generator(image, {"_target_": "inpainting.models.sa_unet.SAUNet", **TINY}, tmp_path / "image.pt")
    with pytest.raises(ConfigError, match="video network"):
        export(tmp_path / "image.pt", "generator", tmp_path / "bad.pt", temporal_prior="flow")
    assert not (tmp_path / "bad.pt").exists()
