"""Multi-head self-attention for 2D feature maps, built on ``scaled_dot_product_attention``.

The seed paper's block materialises an ``(H*W) x (H*W)`` energy matrix, which cannot train above 64x64 (17 GB per
image at 256x256). Here PyTorch's fused SDPA does the work: with contiguous ``(B*, heads, N, d)`` q/k/v it picks a
flash kernel on CPU and GPU whose memory is linear in the number of tokens. Global attention is meant for small maps
(the bottleneck); Swin-style non-overlapping windows keep the cost linear in H*W on large maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTION_MODES = ("global", "window")


def group_norm_groups(channels: int, max_groups: int = 32) -> int:
    """Largest power-of-two group count <= ``max_groups`` that divides ``channels`` (GroupNorm needs a divisor)."""
    return math.gcd(channels, max_groups)


def hole_tokens(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a ``B x 1 x H0 x W0`` hole mask (1 = missing) to ``size``; True where a token is a hole.

    A token counts as a hole only if its whole cell of input pixels is missing: one known pixel is enough to make it
    carry real content. Max-pooling the *known* map gives exactly that, for any (also non-integer) scale.
    """
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be B x 1 x H x W, got shape {tuple(mask.shape)}")
    known = 1.0 - mask.float()
    if tuple(known.shape[-2:]) != tuple(size):
        if known.shape[-2] >= size[0] and known.shape[-1] >= size[1]:
            known = F.adaptive_max_pool2d(known, size)
        else:  # feature map finer than the mask (unusual): copy each mask pixel onto the tokens it covers
            known = F.interpolate(known, size=size, mode="nearest")
    return known < 0.5


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a ``B x C x H x W`` map (ConvNeXt's channels-first LayerNorm).

    Unlike GroupNorm its statistics never cross pixels, so hole and known regions, and images of other sizes,
    cannot change how a pixel is normalised.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # layer_norm over a channels-last view: one fused kernel (2x faster on CPU than mean/var by hand)
        channels_last = x.permute(0, 2, 3, 1)
        return F.layer_norm(channels_last, (x.shape[1],), self.weight, self.bias, self.eps).permute(
            0, 3, 1, 2
        )


class SelfAttention2d(nn.Module):
    """Pre-norm multi-head self-attention over a ``B x C x H x W`` map with a gated residual.

    ``y = x + gamma * proj(attention(qkv(GroupNorm(x))))``. The GroupNorm pre-norm keeps q/k at a stable scale so the
    softmax does not saturate early in training; ``gamma`` is a learnable scalar initialised to 0 (as in SAGAN), so a
    freshly added block is the identity and the network first learns from local convolutions, then lets attention
    in. ``gamma`` itself gets a gradient from the first step.

    Args:
        channels: feature channels C (must be divisible by ``num_heads``).
        num_heads: attention heads; each attends with ``C // num_heads`` dimensions.
        mode: ``"global"`` (all H*W tokens; for small maps) or ``"window"`` (non-overlapping ``window_size`` squares,
            the map padded to a multiple of the window and cropped back; padded tokens are never keys).
        window_size: side of the square window in ``"window"`` mode.
        mask_aware: if True, ``forward(x, mask)`` takes the hole mask (1 = missing) at any resolution and hole tokens
            cannot serve as keys (MAT-style: a hole has nothing to offer until filled). A window or image without any
            known token falls back to attending to all of its tokens, so the output is never NaN.
        qkv_kernel: kernel size of the q/k/v projection. 1 (default) is cheap; the seed used 3, which costs about 9x
            the projection FLOPs at full resolution for little gain.
        kv_pool: ``"global"`` mode only: keys and values come from the map average-pooled by this factor (PVT-style
            spatial reduction; any size, via adaptive pooling), cutting the attention cost by ``kv_pool**2`` while
            every query still sees the whole image. A pooled key is a hole only if its whole cell is missing.
        norm: the pre-norm: ``"group"`` (GroupNorm: statistics over the whole map) or ``"layer"`` (each token's own
            channels, as in ViT/Swin; see :class:`LayerNorm2d`).
        gate_init: initial ``gamma``; 0 is SAGAN's identity start, 1 a plain pre-norm residual.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 4,
        mode: str = "global",
        window_size: int = 8,
        mask_aware: bool = False,
        qkv_kernel: int = 1,
        kv_pool: int = 1,
        norm: str = "group",
        gate_init: float = 0.0,
    ) -> None:
        super().__init__()
        if norm not in ("group", "layer"):
            raise ValueError(f"norm must be 'group' or 'layer', got {norm!r}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if num_heads < 1 or channels % num_heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        if mode not in ATTENTION_MODES:
            raise ValueError(f"mode must be one of {ATTENTION_MODES}, got {mode!r}")
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        if qkv_kernel < 1 or qkv_kernel % 2 == 0:
            raise ValueError(f"qkv_kernel must be a positive odd number, got {qkv_kernel}")
        if kv_pool < 1 or (kv_pool > 1 and mode != "global"):
            raise ValueError(
                f"kv_pool must be >= 1, and > 1 only in global mode; got {kv_pool} with mode {mode!r}"
            )
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.mode = mode
        self.window_size = window_size
        self.mask_aware = mask_aware
        self.kv_pool = kv_pool
        self.norm = (
            LayerNorm2d(channels) if norm == "layer" else nn.GroupNorm(group_norm_groups(channels), channels)
        )
        self.qkv = nn.Conv2d(channels, 3 * channels, qkv_kernel, padding=qkv_kernel // 2)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((), float(gate_init)))

    def extra_repr(self) -> str:
        extra = f", window_size={self.window_size}" if self.mode == "window" else f", kv_pool={self.kv_pool}"
        return f"channels={self.channels}, num_heads={self.num_heads}, mode={self.mode!r}{extra}, mask_aware={self.mask_aware}"

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend over ``x`` (B x C x H x W); ``mask`` (B x 1 x H0 x W0, 1 = missing) is used only if mask_aware."""
        if self.mask_aware and mask is None:
            raise ValueError("mask_aware=True needs forward(x, mask) with the B x 1 x H x W hole mask")
        qkv = self.qkv(self.norm(x))
        mask = mask if self.mask_aware else None
        out = self._attend_pooled(qkv, mask) if self.kv_pool > 1 else self._attend(qkv, mask)
        return x + self.gamma * self.proj(out)

    def _attend(self, qkv: Tensor, mask: Tensor | None) -> Tensor:
        """Split ``B x 3C x H x W`` into windows and heads, run SDPA, and fold back to ``B x C x H x W``."""
        b, _, h, w = qkv.shape
        if self.mode == "window":
            wh = ww = self.window_size
        else:  # global is one window covering the whole map
            wh, ww = h, w
        pad_h, pad_w = (-h) % wh, (-w) % ww
        hp, wp = h + pad_h, w + pad_w
        nh, nw = hp // wh, wp // ww

        # Key validity per token (True = may be attended to): not padding, and not a hole when mask-aware.
        key_valid: Tensor | None = None
        if pad_h or pad_w or mask is not None:
            real = torch.ones(b, 1, h, w, dtype=torch.bool, device=qkv.device)
            if pad_h or pad_w:
                qkv = F.pad(qkv, (0, pad_w, 0, pad_h))
                real = F.pad(real, (0, pad_w, 0, pad_h), value=False)
            real_tok = self._to_windows(real, nh, wh, nw, ww)  # (B*nWin, 1, N)
            key_valid = real_tok
            if mask is not None:
                known = ~hole_tokens(mask, (h, w))
                if pad_h or pad_w:
                    known = F.pad(known, (0, pad_w, 0, pad_h), value=False)
                key_valid = self._to_windows(known, nh, wh, nw, ww)
                # A window with no known token would softmax over nothing (NaN): let it see all its real tokens.
                key_valid = key_valid | (real_tok & ~key_valid.any(-1, keepdim=True))
            key_valid = key_valid.unsqueeze(2)  # (B*nWin, 1, 1, N): broadcast over heads and queries

        # (B, 3, heads, d, nh, wh, nw, ww) -> (3, B, nh, nw, heads, wh, ww, d) -> (3, B*nWin, heads, N, d)
        t = qkv.view(b, 3, self.num_heads, self.head_dim, nh, wh, nw, ww)
        t = t.permute(1, 0, 4, 6, 2, 5, 7, 3).reshape(3, b * nh * nw, self.num_heads, wh * ww, self.head_dim)
        # Contiguous q/k/v is what lets SDPA choose its flash kernel (memory linear in N) instead of the N^2 math path.
        # reshape() has copied already, so each unbind() slice is contiguous (and its backward is one stack, no fills).
        q, k, v = (u.contiguous() for u in t.unbind(0))
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=key_valid)

        # (B*nWin, heads, N, d) -> (B, heads, d, nh, wh, nw, ww) -> (B, C, Hp, Wp), then crop the padding.
        o = o.view(b, nh, nw, self.num_heads, wh, ww, self.head_dim).permute(0, 3, 6, 1, 4, 2, 5)
        o = o.reshape(b, self.channels, hp, wp)
        return o[:, :, :h, :w]

    def _attend_pooled(self, qkv: Tensor, mask: Tensor | None) -> Tensor:
        """Global attention of full-resolution queries over ``kv_pool``-pooled keys/values."""
        b, _, h, w = qkv.shape
        c, heads, d = self.channels, self.num_heads, self.head_dim
        hk, wk = -(-h // self.kv_pool), -(-w // self.kv_pool)
        q, kv = qkv.split([c, 2 * c], dim=1)
        kv = F.adaptive_avg_pool2d(kv, (hk, wk))
        q = q.reshape(b, heads, d, h * w).transpose(2, 3).contiguous()  # (B, heads, N, d)
        k, v = (u.contiguous() for u in kv.reshape(b, 2, heads, d, hk * wk).permute(1, 0, 2, 4, 3).unbind(0))
        key_valid = None
        if mask is not None:
            key_valid = (~hole_tokens(mask, (hk, wk))).view(b, 1, 1, hk * wk)
            key_valid = key_valid | ~key_valid.any(
                -1, keepdim=True
            )  # no known key at all: attend to every key
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=key_valid)
        return o.transpose(2, 3).reshape(b, c, h, w)

    @staticmethod
    def _to_windows(m: Tensor, nh: int, wh: int, nw: int, ww: int) -> Tensor:
        """``B x 1 x Hp x Wp`` token flags -> ``(B*nWin) x 1 x N`` in the same window/token order as q/k/v."""
        b = m.shape[0]
        return m.view(b, nh, wh, nw, ww).permute(0, 1, 3, 2, 4).reshape(b * nh * nw, 1, wh * ww)
