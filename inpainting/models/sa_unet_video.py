"""Video inpainting generator: the sa_unet encoder-decoder on every frame, its attention across the frames.

``net(clip * (1 - mask), mask) -> clip``: ``B x T x 3 x H x W`` in [-1, 1] with a ``B x T x 1 x H x W`` mask
(1 = missing). Convolutions, norms and the push-pull prior (``fill_prior``) run per frame, the T frames folded
into the batch; only the attention blocks see the clip, so a hole in one frame can be filled with what another
frame shows at the same place:

* ``"window"`` levels attend over the same ``window_size`` square in all T frames (``T * ws * ws`` tokens per
  window), so the cost stays linear in pixels and in T;
* ``"global"`` levels (the bottleneck) let every token of every frame attend over the pooled keys of all frames:
  each frame contributes at most ``kv_grid`` x ``kv_grid`` keys (``kv_pool``-times pooled), so keys grow with T
  only and SDPA's memory stays linear in tokens.

``temporal=False`` is the per-frame ablation with the same parameters (identical ``state_dict``): every attention
block attends within its own frame, exactly as :class:`~inpainting.models.sa_unet.SAUNet` does. The parameter names
and shapes are SAUNet's, so a shipped image model initialises the video model one to one
(:meth:`SAUNetVideo.load_image_weights`, :meth:`SAUNetVideo.from_image_generator`); with T = 1 the two compute the
same function. ``mask_aware=True`` keeps hole tokens from being keys in every frame, so a hidden pixel is filled
from the frames where that place is visible.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpainting.models.attention import SelfAttention2d
from inpainting.models.fill_prior import nearest_visible_fill, push_pull_fill
from inpainting.models.flow_prior import STILL_CAMERA_PX, flow_fill
from inpainting.models.layers import LayerNorm2d, hole_tokens
from inpainting.models.sa_unet import SAUNet

__all__ = ["SAUNetVideo", "VideoSelfAttention"]

IMAGE_TARGET = f"{SAUNet.__module__}.{SAUNet.__qualname__}"
#: ``temporal_prior`` values: a bool (True = "nearest") or one of these names
TEMPORAL_PRIORS = ("none", "nearest", "flow")
#: score added at spatial offset 0 to a key in another frame of the window, before training (see VideoSelfAttention)
CROSS_FRAME_BIAS_INIT = 4.0


class VideoSelfAttention(SelfAttention2d):
    """:class:`SelfAttention2d` whose tokens may span the frames of a clip folded into the batch.

    Same parameters and layout as the image block. ``forward(x, mask, frames=None)`` is the image block (each
    ``B*T`` map on its own); ``frames=T`` reads ``x`` as ``(B*T) x C x H x W`` with a clip's frames consecutive and
    attends across them (window: the same window in all frames; global: all frames' pooled keys). Keys of padding
    and, when mask-aware, of holes are excluded; a window (or clip) with no allowed key attends to all its real
    tokens so the output is never NaN.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A cross-frame relative position bias (Swin's relative position bias, Liu et al. 2021, between frames
        # only): one value per head and spatial offset, added to the score of a key in *another* frame of the
        # window. Content alone cannot lead a hole token to the same place in the other frames (it carries only
        # the fill prior); this bias can, and it starts as a locality prior (CROSS_FRAME_BIAS_INIT at offset 0,
        # a Gaussian of width 1 around it), so the untrained model already prefers "the same place, elsewhere in
        # time". Pairs in the same frame get no bias, so one frame, or the per-frame ablation, is the image block.
        if self.mode == "window":
            ws = self.window_size
            offsets = torch.arange(-(ws - 1), ws, dtype=torch.float32)
            distance2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
            prior = CROSS_FRAME_BIAS_INIT * torch.exp(-distance2 / 2).flatten()
            self.cross_frame_bias = nn.Parameter(prior.repeat(self.num_heads, 1))

    def _window_bias(self, frames: int, wh: int, ww: int, key_valid: Tensor | None) -> Tensor | None:
        """``(1 or B*nWin, heads, T*N, T*N)`` float attention bias (the cross-frame position bias, -inf for invalid
        keys), or just ``key_valid`` when there is no other frame."""
        if frames == 1 or not hasattr(self, "cross_frame_bias"):
            return key_valid
        device = self.cross_frame_bias.device
        ys, xs = torch.meshgrid(
            torch.arange(wh, device=device), torch.arange(ww, device=device), indexing="ij"
        )
        ys, xs = ys.flatten(), xs.flatten()
        span = 2 * self.window_size - 1
        index = (ys[:, None] - ys[None, :] + self.window_size - 1) * span + (
            xs[:, None] - xs[None, :] + self.window_size - 1
        )
        bias = self.cross_frame_bias[:, index.repeat(frames, frames)]  # (heads, T*N, T*N)
        frame = torch.arange(frames, device=device).repeat_interleave(wh * ww)
        bias = bias.masked_fill(frame[:, None] == frame[None, :], 0.0)[None]  # same frame: no bias
        if key_valid is not None:
            bias = bias.masked_fill(~key_valid, float("-inf"))
        return bias

    @classmethod
    def from_image_block(cls, block: SelfAttention2d) -> VideoSelfAttention:
        """A video block with ``block``'s configuration and a copy of its parameters."""
        video = cls(
            block.channels,
            block.num_heads,
            block.mode,
            block.window_size,
            mask_aware=block.mask_aware,
            kv_pool=block.kv_pool,
            norm="layer" if isinstance(block.norm, LayerNorm2d) else "group",
            kv_grid=block.kv_grid,
        )
        video.load_state_dict(block.state_dict(), strict=False)  # all but the cross-frame bias
        return video.to(block.gamma.device, block.gamma.dtype)

    def forward(self, x: Tensor, mask: Tensor | None = None, frames: int | None = None) -> Tensor:
        """``x``: ``(B*T) x C x H x W``; ``mask``: ``(B*T) x 1 x H0 x W0`` (mask-aware only); ``frames``: T or None."""
        if frames is None:
            return super().forward(x, mask)
        if self.mask_aware and mask is None:
            raise ValueError("mask_aware=True needs forward(x, mask) with the (B*T) x 1 x H x W hole mask")
        if frames < 1 or x.shape[0] % frames:
            raise ValueError(f"batch {x.shape[0]} is not a whole number of clips of {frames} frames")
        mask = mask if self.mask_aware else None
        xn = self.norm(x)  # per frame: LayerNorm per token, GroupNorm over each frame's map
        if self.kv_pool > 1 or self.kv_grid > 0:
            out = self._video_pooled(xn, mask, frames)
        else:
            out = self._video_windows(xn, mask, frames)
        return x + self.gamma * self.proj(out)

    def _conv_qkv(self, xn: Tensor, part: slice) -> Tensor:
        """Rows ``part`` of the 1x1 q/k/v projection on a ``(B*T) x C x H x W`` map (per frame)."""
        return F.conv2d(xn, self.qkv.weight[part], self.qkv.bias[part])

    def _video_windows(self, xn: Tensor, mask: Tensor | None, frames: int) -> Tensor:
        """Window attention over ``frames * wh * ww`` tokens per window (global unpooled: one window)."""
        bt, c, h, w = xn.shape
        b, heads, d = bt // frames, self.num_heads, self.head_dim
        wh, ww = (self.window_size, self.window_size) if self.mode == "window" else (h, w)
        pad_h, pad_w = (-h) % wh, (-w) % ww
        hp, wp = h + pad_h, w + pad_w
        nh, nw = hp // wh, wp // ww
        qkv = self._conv_qkv(xn, slice(None))
        if pad_h or pad_w:  # padded tokens are never keys and their outputs are cropped
            qkv = F.pad(qkv, (0, pad_w, 0, pad_h))
        # (B, T, 3, heads, d, nh, wh, nw, ww) -> (3, B, nh, nw, heads, T, wh, ww, d) -> (3, B*nWin, heads, T*N, d)
        t = qkv.view(b, frames, 3, heads, d, nh, wh, nw, ww).permute(2, 0, 5, 7, 3, 1, 6, 8, 4)
        q, k, v = (u.contiguous() for u in t.reshape(3, b * nh * nw, heads, frames * wh * ww, d).unbind(0))
        key_valid = self._video_window_key_valid(b, frames, h, w, wh, ww, mask, xn.device)
        if self.mode == "window":
            o = F.scaled_dot_product_attention(
                q, k, v, attn_mask=self._window_bias(frames, wh, ww, key_valid)
            )
        else:
            o = self._sdpa(q, k, v, key_valid)
        # (B*nWin, heads, T*N, d) -> (B, T, heads, d, nh, wh, nw, ww) -> (B*T, C, Hp, Wp), cropped
        o = o.view(b, nh, nw, heads, frames, wh, ww, d).permute(0, 4, 3, 7, 1, 5, 2, 6)
        return o.reshape(bt, c, hp, wp)[:, :, :h, :w]

    def _video_window_key_valid(
        self,
        b: int,
        frames: int,
        h: int,
        w: int,
        wh: int,
        ww: int,
        mask: Tensor | None,
        device: torch.device,
    ) -> Tensor | None:
        """``(B*nWin, 1, 1, T*N)`` key validity in the token order of :meth:`_video_windows`, or None."""
        pad_h, pad_w = (-h) % wh, (-w) % ww
        if not (pad_h or pad_w or mask is not None):
            return None
        nh, nw = (h + pad_h) // wh, (w + pad_w) // ww

        def windows(flags: Tensor) -> Tensor:  # (B*T, 1, H, W) bool -> (B*nWin, T*N)
            flags = F.pad(flags, (0, pad_w, 0, pad_h), value=False) if pad_h or pad_w else flags
            flags = flags.view(b, frames, nh, wh, nw, ww).permute(0, 2, 4, 1, 3, 5)
            return flags.reshape(b * nh * nw, frames * wh * ww)

        real = windows(torch.ones(b * frames, 1, h, w, dtype=torch.bool, device=device))
        key_valid = real
        if mask is not None:
            key_valid = windows(~hole_tokens(mask, (h, w)))
            key_valid = key_valid | (real & ~key_valid.any(-1, keepdim=True))
        return key_valid[:, None, None, :]

    def _video_pooled(self, xn: Tensor, mask: Tensor | None, frames: int) -> Tensor:
        """Every token of the clip over the pooled keys/values of all its frames (``kv_grid`` caps each frame)."""
        bt, c, h, w = xn.shape
        b, heads, d = bt // frames, self.num_heads, self.head_dim
        hk, wk = self._key_grid(h, w)
        q = self._conv_qkv(xn, slice(0, c))
        # a 1x1 projection commutes with averaging: pool first, project the few keys
        kv = self._conv_qkv(self._pool(xn, hk, wk), slice(c, 3 * c))
        q = q.view(b, frames, heads, d, h * w).permute(0, 2, 1, 4, 3).reshape(b, heads, frames * h * w, d)
        kv = kv.reshape(b, frames, 2, heads, d, hk * wk).permute(2, 0, 3, 1, 5, 4)
        k, v = (u.contiguous() for u in kv.reshape(2, b, heads, frames * hk * wk, d).unbind(0))
        key_valid = None
        if mask is not None:
            key_valid = (self._pool(1.0 - mask.to(xn.dtype), hk, wk) > 0).reshape(
                b, 1, 1, -1
            )  # as the image block
            key_valid = key_valid | ~key_valid.any(-1, keepdim=True)
        o = self._sdpa(q.contiguous(), k, v, key_valid)  # (B, heads, T*HW, d)
        return o.view(b, heads, frames, h * w, d).permute(0, 2, 1, 4, 3).reshape(bt, c, h, w)


def _prior_name(value: bool | str) -> str:
    """``temporal_prior`` as one of :data:`TEMPORAL_PRIORS` (True is ``"nearest"``, False ``"none"``)."""
    if isinstance(value, bool):
        return "nearest" if value else "none"
    if value not in TEMPORAL_PRIORS:
        raise ValueError(
            f"temporal_prior must be true, false or one of {', '.join(TEMPORAL_PRIORS)}, got {value!r}"
        )
    return value


class SAUNetVideo(SAUNet):
    """SAUNet on clips: ``forward(masked_clip, mask) -> clip``, ``B x T x 3 x H x W`` in [-1, 1].

    Takes every :class:`SAUNet` argument (same meaning, same parameters) plus ``temporal``: True makes the attention
    blocks attend across the T frames (see the module docstring), False keeps each frame to itself (the per-frame
    ablation, identical ``state_dict``). ``temporal_prior`` picks the first guess the net refines: ``"nearest"``
    (or True) takes each hole pixel from the nearest frame that shows the same place (a still camera), ``"flow"``
    follows the optical flow there (:mod:`~inpainting.models.flow_prior`: OpenCV on the CPU, outside any ONNX or
    TorchScript graph, so such a net exports with ``"nearest"``), ``"none"`` (or False) is the per-frame push-pull
    fill. No parameters depend on it. A 4-D ``B x 3 x H x W`` input is a one-frame clip and comes back 4-D, so
    image tools (MAC counts, image training) can run it.
    """

    def __init__(
        self,
        *args: Any,
        temporal: bool = True,
        temporal_prior: bool | str = False,
        propagated_mask: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.temporal = bool(temporal)
        self.set_temporal_prior(temporal_prior)
        if not 0.0 <= propagated_mask <= 1.0:
            raise ValueError(f"propagated_mask must be in [0, 1], got {propagated_mask}")
        self.propagated_mask = float(propagated_mask)
        with torch.random.fork_rng(
            devices=[]
        ):  # the same seed gives SAUNet's weights, and the same RNG after
            for key, block in list(self.attn.items()):
                self.attn[key] = VideoSelfAttention.from_image_block(block)
        self._frames: int | None = None  # T of the clip being processed, read by _attend

    def set_temporal_prior(self, value: bool | str) -> None:
        """Choose the first guess (``true``/``"nearest"``, ``"flow"``, ``false``/``"none"``). No parameter depends
        on it, so a trained net can be given another (``python -m inpainting.export ... temporal_prior=...``)."""
        name = _prior_name(value)
        if name != "none" and not self.fill_prior:
            raise ValueError(f"temporal_prior={value} refines a first guess: it needs fill_prior=true")
        self.temporal_prior = name

    def extra_repr(self) -> str:
        return f"temporal={self.temporal}, temporal_prior={self.temporal_prior}"

    def _prior(self, masked_image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """With ``temporal_prior``: hole pixels first from another frame that sees them (the same place, or along
        the flow), push-pull on the rest; the mask channel shows those pixels as ``propagated_mask`` (1 = still a
        hole to the net)."""
        frames = self._frames or 1
        if self.temporal_prior == "none" or frames == 1:
            return super()._prior(masked_image, mask)
        clip = masked_image.view(-1, frames, *masked_image.shape[1:])
        clip_mask = mask.view(-1, frames, *mask.shape[1:])
        if self.temporal_prior == "flow":
            filled, unseen = flow_fill(clip, clip_mask, still_camera_px=STILL_CAMERA_PX)
        else:
            filled, unseen = nearest_visible_fill(clip, clip_mask)
        filled, unseen = filled.flatten(0, 1), unseen.flatten(0, 1)
        prior = push_pull_fill(filled, unseen, relax=self.fill_prior_relax)
        return prior, unseen + self.propagated_mask * (mask - unseen)

    #: parameters an image SAUNet does not have; they act only across frames, so image weights keep their function
    #: on every frame: ``init_from`` an image model may leave them out (inpainting/training/init_weights.py)
    video_only_parameters = ("cross_frame_bias",)

    def load_image_weights(self, state_dict: dict[str, Tensor]) -> None:
        """Initialise from an image :class:`SAUNet`'s ``state_dict`` (same keys and shapes; only the cross-frame
        biases are not in it and keep their prior)."""
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        extra = [k for k in missing if not k.endswith(self.video_only_parameters)]
        if extra or unexpected:
            raise RuntimeError(f"not an image SAUNet state_dict: missing {extra}, unexpected {unexpected}")

    @classmethod
    def from_image_generator(
        cls, path: str | Path, temporal: bool = True, mask_aware: bool | None = None
    ) -> SAUNetVideo:
        """The video model of a shipped SAUNet file (generator ``.pt`` or training ``.ckpt``), eval mode, CPU.

        Read with the project's safe reader (``weights_only``, registry-checked config). ``mask_aware`` (no
        parameters) may be changed; None keeps the file's.
        """
        from inpainting.inference.checkpoint import load_generator

        image_net, config = load_generator(path, expected_target=IMAGE_TARGET)
        arguments = {k: v for k, v in config["model"].items() if k not in ("_target_", "name")}
        if mask_aware is not None:
            arguments["mask_aware"] = mask_aware
        net = cls(**arguments, temporal=temporal)
        net.load_image_weights(image_net.state_dict())
        return net.eval()

    def _attend(self, key: str, h: Tensor, mask: Tensor) -> Tensor:
        if key not in self.attn:
            return h
        # the per-frame ablation is the same block on one-frame clips (same parameters, position bias included)
        return self.attn[key](h, mask if self.mask_aware else None, self._frames if self.temporal else 1)

    def forward(self, masked_image: Tensor, mask: Tensor) -> Tensor:
        """``masked_image``: ``B x T x 3 x H x W`` (holes zeroed); ``mask``: ``B x T x 1 x H x W``, 1 = missing."""
        if masked_image.dim() == 4 and mask.dim() == 4:
            return self.forward(masked_image[:, None], mask[:, None])[:, 0]
        if masked_image.dim() != 5 or mask.dim() != 5 or masked_image.shape[:2] != mask.shape[:2]:
            raise ValueError(
                f"expected a B x T x C x H x W clip and a B x T x 1 x H x W mask, got shapes "
                f"{tuple(masked_image.shape)} and {tuple(mask.shape)}"
            )
        b, frames = masked_image.shape[:2]
        self._frames = frames
        try:
            out = super().forward(masked_image.flatten(0, 1), mask.flatten(0, 1))
        finally:
            self._frames = None
        return out.view(b, frames, *out.shape[1:])


# SAUNet's arguments plus ``temporal``, spelled out for the registry's argument check (``inspect.signature.bind``)
SAUNetVideo.__signature__ = inspect.Signature(
    [
        *inspect.signature(SAUNet).parameters.values(),
        inspect.Parameter("temporal", inspect.Parameter.KEYWORD_ONLY, default=True, annotation=bool),
        inspect.Parameter(
            "temporal_prior", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=bool | str
        ),
        inspect.Parameter("propagated_mask", inspect.Parameter.KEYWORD_ONLY, default=1.0, annotation=float),
    ]
)
