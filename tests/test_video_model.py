"""SAUNetVideo: per-frame convolutions, attention across frames, SAUNet's parameters one to one."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from inpainting.inference.checkpoint import DEFAULT_WEIGHTS, load_generator
from inpainting.models.fill_prior import nearest_visible_fill
from inpainting.models.registry import build_network
from inpainting.models.sa_unet import SAUNet
from inpainting.models.sa_unet_video import SAUNetVideo, VideoSelfAttention

#: small enough for 2 CPU cores; gates at 1 and a random head so attention visibly shapes the output
TINY = {"base_channels": 8, "num_heads": 2, "window_size": 4, "attention_gate_init": 1.0, "kv_grid": 4}


def clip(b: int = 1, t: int = 4, h: int = 16, w: int = 20, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, t, 3, h, w, generator=g, dtype=dtype) * 2 - 1
    mask = (torch.rand(b, t, 1, h, w, generator=g) > 0.7).to(dtype)
    return image * (1 - mask), mask


def test_output_shapes_clip_and_single_frame():
    net = SAUNetVideo(**TINY)
    masked, mask = clip(b=2, t=3, h=18, w=22)  # not a multiple of the downsampling nor of the window
    out = net(masked, mask)
    assert out.shape == (2, 3, 3, 18, 22) and out.abs().max() <= 1
    assert net(masked[:, 0], mask[:, 0]).shape == (2, 3, 18, 22)  # 4-D = one frame
    with pytest.raises(ValueError, match="B x T x C x H x W"):
        net(masked, mask[:, :2])


@pytest.mark.parametrize("mode_args", [{}, {"attention": ["window", "none", "global"], "kv_grid": 0}])
def test_per_frame_ablation_ignores_other_frames_temporal_does_not(mode_args):
    masked, mask = clip(t=4)
    other = masked.clone()
    other[:, 2] = -other[:, 2]  # perturb frame 2 only
    temporal = SAUNetVideo(**{**TINY, **mode_args})
    per_frame = SAUNetVideo(**{**TINY, **mode_args}, temporal=False)
    per_frame.load_state_dict(temporal.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(
            per_frame(other, mask)[:, 0], per_frame(masked, mask)[:, 0], rtol=0, atol=0
        )
        change = (temporal(other, mask)[:, 0] - temporal(masked, mask)[:, 0]).abs().max()
    assert change > 1e-4


def test_state_dict_is_saunets_plus_cross_frame_biases_for_both_settings():
    torch.manual_seed(3)
    image = SAUNet(**TINY).state_dict()
    torch.manual_seed(3)
    temporal = SAUNetVideo(**TINY).state_dict()
    per_frame = SAUNetVideo(**TINY, temporal=False).state_dict()
    assert list(temporal) == list(per_frame)
    extras = [k for k in temporal if k not in image]
    assert extras and all(k.endswith(SAUNetVideo.video_only_parameters) for k in extras)
    assert all(temporal[k].shape == per_frame[k].shape == image[k].shape for k in image)
    assert all(torch.equal(temporal[k], image[k]) for k in image)  # same seed, same weights


@pytest.mark.parametrize(
    "config",
    [
        {**TINY, "norm": "layer", "fill_prior": True, "fill_prior_relax": 2},
        {**TINY, "norm": "group", "kv_grid": 0, "attention_in": "both", "mask_aware": True},
    ],
    ids=["layer-prior", "group-mask"],
)
def test_one_frame_equals_saunet_after_loading_its_weights(config):
    image_net = SAUNet(**config).double()
    for p in image_net.parameters():  # nothing left at its (zero or one) initial value
        p.data.normal_(0, 0.2)
    video_net = SAUNetVideo(**config).double()
    video_net.load_image_weights(image_net.state_dict())
    masked, mask = clip(b=2, t=1, h=20, w=28, dtype=torch.float64)
    with torch.no_grad():
        expected = image_net(masked[:, 0], mask[:, 0])
        torch.testing.assert_close(video_net(masked, mask)[:, 0], expected, rtol=0, atol=1e-10)


def test_from_shipped_image_generator_one_frame_matches():
    image_net, _ = load_generator(DEFAULT_WEIGHTS)
    video_net = SAUNetVideo.from_image_generator(DEFAULT_WEIGHTS, temporal=True)
    assert video_net.temporal and not video_net.training
    masked, mask = clip(b=1, t=1, h=24, w=24)
    with torch.no_grad():
        torch.testing.assert_close(video_net(masked, mask)[:, 0], image_net(masked[:, 0], mask[:, 0]))


def test_config_and_registry_build_it(tiny_train_config):
    net = instantiate(tiny_train_config("model=sa_unet_video").model)
    assert isinstance(net, SAUNetVideo) and net.temporal and not net.mask_aware
    built = build_network({"_target_": "sa_unet_video", **TINY, "temporal": False})
    assert isinstance(built, SAUNetVideo) and not built.temporal


# ---- the attention block against a naive reference ---------------------------------------------------------


def naive_video_attention(
    mod: VideoSelfAttention, x: torch.Tensor, frames: int, known: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(QK^T/sqrt(d))V per window (or whole map) and head, the window's tokens taken from every frame.

    ``x``: (B*T, C, H, W); ``known``: (B*T, H, W) bool, False = may not be a key (a window with none: all keys).
    Global mode with ``kv_pool``: keys/values from each frame's adaptively average-pooled normalised map.
    """
    bt, c, h, w = x.shape
    b, heads, d = bt // frames, mod.num_heads, c // mod.num_heads
    xn = mod.norm(x)
    q = F.conv2d(xn, mod.qkv.weight[:c], mod.qkv.bias[:c], padding=mod.qkv.padding)
    pooled = mod.mode == "global" and mod.kv_pool > 1
    if pooled:
        hk, wk = math.ceil(h / mod.kv_pool), math.ceil(w / mod.kv_pool)
        source = F.adaptive_avg_pool2d(xn, (hk, wk))
        known = None if known is None else F.adaptive_max_pool2d(known[:, None].double(), (hk, wk))[:, 0] > 0
    else:
        source = xn
    kv = F.conv2d(source, mod.qkv.weight[c:], mod.qkv.bias[c:], padding=mod.qkv.padding)
    k, v = kv[:, :c], kv[:, c:]
    ws = mod.window_size if mod.mode == "window" else max(h, w)
    out = torch.zeros_like(q)
    for bi in range(b):
        fr = slice(bi * frames, (bi + 1) * frames)
        for top in range(0, h, ws):
            for left in range(0, w, ws):
                rows, cols = slice(top, top + ws), slice(left, left + ws)
                krows, kcols = (slice(None), slice(None)) if pooled else (rows, cols)
                valid = None if known is None else known[fr, krows, kcols].reshape(-1)
                if valid is not None and not valid.any():
                    valid = None
                for hi in range(heads):
                    ch = slice(hi * d, (hi + 1) * d)
                    qw = q[fr, ch, rows, cols].permute(0, 2, 3, 1).reshape(-1, d)
                    kw = k[fr, ch, krows, kcols].permute(0, 2, 3, 1).reshape(-1, d)
                    vw = v[fr, ch, krows, kcols].permute(0, 2, 3, 1).reshape(-1, d)
                    scores = qw @ kw.T / math.sqrt(d)
                    if hasattr(mod, "cross_frame_bias") and not pooled:  # between different frames only
                        ys, xs = torch.meshgrid(
                            torch.arange(top, min(top + ws, h)),
                            torch.arange(left, min(left + ws, w)),
                            indexing="ij",
                        )
                        n = ys.numel()
                        ys, xs = ys.flatten().repeat(frames), xs.flatten().repeat(frames)
                        span = 2 * ws - 1
                        rel = (ys[:, None] - ys[None] + ws - 1) * span + (xs[:, None] - xs[None] + ws - 1)
                        frame = torch.arange(frames).repeat_interleave(n)
                        other = (frame[:, None] != frame[None]).to(scores.dtype)
                        scores = scores + mod.cross_frame_bias[hi][rel] * other
                    if valid is not None:
                        scores = scores.masked_fill(~valid[None], float("-inf"))
                    o = torch.softmax(scores, -1) @ vw
                    shape = q[fr, ch, rows, cols].permute(0, 2, 3, 1).shape
                    out[fr, ch, rows, cols] = o.reshape(shape).permute(0, 3, 1, 2)
    return x + mod.gamma * F.conv2d(out, mod.proj.weight, mod.proj.bias)


def random_block(**kwargs) -> VideoSelfAttention:
    torch.manual_seed(0)
    block = VideoSelfAttention(8, num_heads=2, gate_init=1.0, **kwargs).double()
    for p in block.parameters():
        p.data.normal_(0, 0.5)
    return block


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "window", "window_size": 4, "norm": "layer"},
        {"mode": "window", "window_size": 4, "norm": "group"},
        {"mode": "global", "kv_pool": 2, "norm": "layer"},
        {"mode": "global", "kv_pool": 1, "norm": "layer"},
    ],
    ids=["window", "window-group", "global-pooled", "global-full"],
)
@pytest.mark.parametrize("mask_aware", [False, True])
def test_attention_across_frames_equals_naive_reference(kwargs, mask_aware):
    frames, h, w = 3, 6, 10  # 6 x 10 is not a multiple of the 4-window: padded windows at the borders
    block = random_block(mask_aware=mask_aware, **kwargs)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2 * frames, 8, h, w, generator=g, dtype=torch.float64)
    mask = (torch.rand(2 * frames, 1, h, w, generator=g) > 0.5).double()
    mask[:frames, :, :4, :4] = 1.0  # clip 0: one window a hole in every frame (falls back to all its keys)
    if kwargs["mode"] == "global":
        mask[:frames] = 1.0  # clip 0 all hole: no known key anywhere (falls back to all keys)
    known = (mask[:, 0] < 0.5) if mask_aware else None
    expected = naive_video_attention(block, x, frames, known)
    torch.testing.assert_close(block(x, mask, frames=frames), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "window", "window_size": 4}, {"mode": "global", "kv_pool": 2, "kv_grid": 2}],
    ids=["window", "global-pooled"],
)
def test_mask_aware_hole_keys_get_no_weight(kwargs):
    """Changing what lies under a hole (any frame) leaves every known token's output as it was."""
    frames = 3
    block = random_block(mask_aware=True, norm="layer", **kwargs)
    x = torch.randn(frames, 8, 8, 8, dtype=torch.float64)
    mask = torch.zeros(frames, 1, 8, 8, dtype=torch.float64)
    mask[0, :, :4, :4] = 1.0  # whole windows / whole pooled cells, at a different place in each frame
    mask[1, :, 4:, 4:] = 1.0
    mask[2, :, :4, 4:] = 1.0
    hole = mask.bool().expand_as(x)
    other = torch.where(hole, 10 * torch.randn_like(x), x)
    out, out_other = block(x, mask, frames=frames), block(other, mask, frames=frames)
    torch.testing.assert_close(out[~hole], out_other[~hole], rtol=0, atol=1e-12)
    assert torch.isfinite(out).all()
    block.mask_aware = False
    assert not torch.allclose(block(x, None, frames=frames)[~hole], block(other, None, frames=frames)[~hole])


def test_cross_frame_bias_takes_a_hidden_place_from_another_frame_and_leaves_one_frame_alone():
    """With a large bias at offset 0 and hole keys excluded, a hole token's output is (almost only) the value of
    the same place in the frame where it is visible: the copy a static camera needs, which content cannot find.
    Within one frame the bias does nothing (the image block's function)."""
    torch.manual_seed(0)
    block = VideoSelfAttention(8, num_heads=1, mode="window", window_size=4, mask_aware=True, norm="layer")
    x = torch.randn(2, 8, 4, 4)  # one clip of two frames
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, 1, 2] = 1  # place (1, 2) hidden in frame 0 only
    xn = block.norm(x)
    v = F.conv2d(xn, block.qkv.weight[16:], block.qkv.bias[16:])
    with torch.no_grad():
        block.cross_frame_bias.zero_()
        without = block._video_windows(xn, mask, frames=2)
        one_frame = block._video_windows(xn, mask, frames=1)
        block.cross_frame_bias[0, (4 - 1) * 7 + (4 - 1)] = 30.0  # offset (0, 0)
        attended = block._video_windows(xn, mask, frames=2)
        torch.testing.assert_close(block._video_windows(xn, mask, frames=1), one_frame)
    assert torch.allclose(attended[0, :, 1, 2], v[1, :, 1, 2], atol=1e-4)
    assert not torch.allclose(without[0, :, 1, 2], v[1, :, 1, 2], atol=1e-2)


def _static_clips(
    g: torch.Generator, n: int, frames: int = 3, size: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips of one random texture each (a static camera) with a 6x6 hole that moves, so every hidden place is
    visible in another frame: only a model that looks across frames can recover it."""
    clip = (
        (torch.rand(n, 1, 3, size, size, generator=g) * 2 - 1).expand(n, frames, 3, size, size).contiguous()
    )
    mask = torch.zeros(n, frames, 1, size, size)
    for i in range(n):
        for t in range(frames):
            y = int(torch.randint(0, size - 6, (1,), generator=g))
            x = (5 * t + int(torch.randint(0, 3, (1,), generator=g))) % (size - 6)
            mask[i, t, :, y : y + 6, x : x + 6] = 1
    return clip, mask


def _trained_hole_error(temporal: bool, steps: int = 120) -> float:
    config = {**TINY, "channel_mults": [1, 2], "attention": ["window", "none"], "num_heads": 1, "kv_grid": 0}
    torch.manual_seed(0)
    net = SAUNetVideo(**config, mask_aware=True, norm="layer", temporal=temporal)
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        clip, mask = _static_clips(g, 4)
        loss = ((net(clip * (1 - mask), mask) - clip).abs() * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    clip, mask = _static_clips(torch.Generator().manual_seed(99), 8)
    with torch.no_grad():
        return float(((net(clip * (1 - mask), mask) - clip) ** 2 * mask).sum() / mask.sum())


def test_a_tiny_temporal_model_learns_what_the_per_frame_one_cannot():
    """Same network, data, seed and steps: attention across frames learns to take a hidden place from the frame
    that shows it (error far below the texture's variance); the per-frame ablation cannot do better than a guess."""
    temporal, per_frame = _trained_hole_error(True), _trained_hole_error(False)
    assert temporal < 0.5 * per_frame


# ---- the temporal fill prior ---------------------------------------------------------------------------------


def test_nearest_visible_fill_takes_each_hidden_pixel_from_the_nearest_frame_that_sees_it():
    frames = torch.arange(4.0).view(1, 4, 1, 1, 1).expand(1, 4, 1, 2, 3).clone()  # frame t holds the value t
    mask = torch.zeros(1, 4, 1, 2, 3)
    mask[0, 1, 0, 0, 0] = 1  # seen in frames 0 and 2: the tie goes to the earlier frame
    mask[0, 2, 0, 0, 1] = mask[0, 1, 0, 0, 1] = (
        1  # frame 2 takes frame 3's (1 away) before frame 0's (2 away)
    )
    mask[:, :, 0, 1, 2] = 1  # seen by no frame
    filled, unseen = nearest_visible_fill(frames * (1 - mask), mask)
    assert filled[0, 1, 0, 0, 0] == 0 and filled[0, 2, 0, 0, 1] == 3 and filled[0, 1, 0, 0, 1] == 0
    assert torch.equal(unseen[0, :, 0, 1, 2], torch.ones(4)) and unseen.sum() == 4
    assert torch.equal(filled * (1 - mask), frames * (1 - mask))  # known pixels untouched
    assert torch.equal(filled[..., 1, 2], torch.zeros(1, 4, 1))  # what no frame sees stays empty


def test_temporal_prior_recovers_a_static_scene_before_training_and_per_frame_cannot():
    """An untrained net returns its prior (zero head): with the temporal prior, every hidden place that another
    frame shows comes back exactly; the same net without it, or on one frame, only guesses."""
    clip, mask = _static_clips(torch.Generator().manual_seed(3), 2)
    config = {**TINY, "fill_prior": True, "fill_prior_relax": 2, "mask_aware": True}
    seen_elsewhere = mask * (mask.sum(1, keepdim=True) < clip.shape[1])  # hidden here, visible in some frame
    errors = {}
    for prior in (True, False):
        torch.manual_seed(0)
        net = SAUNetVideo(**config, temporal_prior=prior, propagated_mask=0.5).eval()
        with torch.no_grad():
            errors[prior] = float(((net(clip * (1 - mask), mask) - clip).abs() * seen_elsewhere).max())
            one_frame = net(clip[:, 0] * (1 - mask[:, 0]), mask[:, 0])
        torch.manual_seed(0)
        image_net = SAUNet(**config).eval()
        with torch.no_grad():
            assert torch.equal(one_frame, image_net(clip[:, 0] * (1 - mask[:, 0]), mask[:, 0]))
    assert seen_elsewhere.sum() > 0 and errors[True] < 1e-5 and errors[False] > 0.1


def test_temporal_prior_needs_fill_prior_and_a_mask_value_in_range():
    with pytest.raises(ValueError, match="fill_prior"):
        SAUNetVideo(**TINY, temporal_prior=True, fill_prior=False)
    with pytest.raises(ValueError, match="propagated_mask"):
        SAUNetVideo(**TINY, fill_prior=True, temporal_prior=True, propagated_mask=2.0)
