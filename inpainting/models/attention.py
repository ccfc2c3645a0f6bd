"""Multi-head self-attention for 2D feature maps, built on ``scaled_dot_product_attention``.

The seed paper's block materialises an ``(H*W) x (H*W)`` energy matrix, which cannot train above 64x64 (17 GB per
image at 256x256). Here PyTorch's fused SDPA does the work: with contiguous ``(B*, heads, N, d)`` q/k/v it picks a
flash kernel on CPU and GPU whose memory is linear in the number of tokens. Global attention is meant for small maps
(the bottleneck); Swin-style non-overlapping windows keep the cost linear in H*W on large maps, and ``kv_grid``
bounds global attention's keys to a fixed number whatever the input size, so its cost is linear in H*W too.

The q/k/v projections are 1x1, so the block works on a channels-last token layout: the map is cut into windows
once, and LayerNorm, the q/k/v and output projections are plain GEMMs on ``(windows, tokens, C)`` (SDPA needs only a
unit stride in the head dimension, so heads are views). The residual gate is folded into the output projection's
weights and the residual add reads the windows in place, so the only copy is the map into windows; global attention
pools the normalised map before projecting keys and values (a 1x1 conv commutes with averaging). Step times: see
docs/benchmarks.md, "Training step: the price of attention".

ONNX has no memory-efficient attention on every runtime: :func:`export_attention` makes global attention export as
a custom op that becomes an ONNX ``Loop`` over query chunks whose score matrices stay under a fixed element budget
(the same softmax(QK^T/sqrt(d))V, row block by row block), so a 2048x1536 photo runs in ONNX Runtime in bounded
memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpainting.models.layers import LayerNorm2d, group_norm_groups, hole_tokens

ATTENTION_MODES = ("global", "window")
#: scores (batch x heads x query rows x keys) per query chunk in exported global attention: 64 MiB of float32
EXPORT_SCORE_BUDGET = 2**24


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
        kv_pool: ``"global"`` mode only: keys and values come from the map average-pooled by this factor (PVT-style
            spatial reduction; any size, via adaptive pooling), cutting the attention cost by ``kv_pool**2`` while
            every query still sees the whole image. A pooled key is a hole only if its whole cell is missing.
        norm: the pre-norm: ``"group"`` (GroupNorm: statistics over the whole map) or ``"layer"`` (each token's own
            channels, as in ViT/Swin; see :class:`LayerNorm2d`).
        gate_init: initial ``gamma``; 0 is SAGAN's identity start, 1 a plain pre-norm residual.
        kv_grid: ``"global"`` mode only: at most ``kv_grid`` pooled keys/values per side (``kv_grid**2`` in all)
            whatever the input size; maps whose ``kv_pool``-pooled grid is smaller are unaffected. 0 (default) = no
            cap: the number of keys then grows with the input, so attention costs O(pixels**2); with a cap it is
            O(pixels). Keys are exact cell means (adaptive average pooling written as two small averaging matrices,
            which also exports to ONNX at any size).
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 4,
        mode: str = "global",
        window_size: int = 8,
        mask_aware: bool = False,
        kv_pool: int = 1,
        norm: str = "group",
        gate_init: float = 0.0,
        kv_grid: int = 0,
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
        if kv_pool < 1 or (kv_pool > 1 and mode != "global"):
            raise ValueError(
                f"kv_pool must be >= 1, and > 1 only in global mode; got {kv_pool} with mode {mode!r}"
            )
        if kv_grid < 0 or (kv_grid > 0 and mode != "global"):
            raise ValueError(
                f"kv_grid must be >= 0, and > 0 only in global mode; got {kv_grid} with mode {mode!r}"
            )
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.mode = mode
        self.window_size = window_size
        self.mask_aware = mask_aware
        self.kv_pool = kv_pool
        self.kv_grid = kv_grid
        #: > 0 while :func:`export_attention` is active: global attention as the query-chunked custom op
        self.export_score_budget = 0
        self.norm = (
            LayerNorm2d(channels) if norm == "layer" else nn.GroupNorm(group_norm_groups(channels), channels)
        )
        #: 1x1 convolutions (their weights are what checkpoints hold), run as GEMMs on tokens
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((), float(gate_init)))

    def extra_repr(self) -> str:
        extra = f", window_size={self.window_size}" if self.mode == "window" else f", kv_pool={self.kv_pool}"
        extra += f", kv_grid={self.kv_grid}" if self.kv_grid else ""
        return f"channels={self.channels}, num_heads={self.num_heads}, mode={self.mode!r}{extra}, mask_aware={self.mask_aware}"

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend over ``x`` (B x C x H x W); ``mask`` (B x 1 x H0 x W0, 1 = missing) is used only if mask_aware."""
        if self.mask_aware and mask is None:
            raise ValueError("mask_aware=True needs forward(x, mask) with the B x 1 x H x W hole mask")
        mask = mask if self.mask_aware else None
        if self.kv_pool > 1 or self.kv_grid > 0:
            return self._tokens_pooled(x, mask)
        return self._tokens_windows(x, mask)

    def _token_norm(self, tokens: Tensor) -> Tensor:
        """The per-token LayerNorm on ``(..., N, C)`` tokens (GroupNorm, which needs the whole map, ran before)."""
        if isinstance(self.norm, LayerNorm2d):
            return F.layer_norm(tokens, (self.channels,), self.norm.weight, self.norm.bias, self.norm.eps)
        return tokens

    def _project(self, tokens: Tensor, part: slice) -> Tensor:
        """``(..., N, C)`` -> ``(..., N, len(part))``: rows ``part`` of the 1x1 q/k/v conv as one GEMM. q, k and v
        come from separate GEMMs, so their gradients need no concatenation in the backward pass."""
        return F.linear(tokens, self.qkv.weight.flatten(1)[part], self.qkv.bias[part])

    def _heads(self, t: Tensor) -> Tensor:
        """``(B, N, C)`` (any row stride) -> ``(B, heads, N, d)`` view; unit stride in d is all SDPA needs."""
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def _gated_merge(self, o: Tensor) -> Tensor:
        """``(B, heads, N, d)`` -> ``gamma * proj(o)`` as ``(B, N, C)``: the gate folded into the projection's
        weights, so the map is never multiplied by it (two full passes fewer, forward and backward)."""
        weight = self.proj.weight.flatten(1) * self.gamma
        return F.linear(o.transpose(1, 2).flatten(2), weight, self.proj.bias * self.gamma)

    def _tokens_windows(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Window (or unpooled global) attention: one copy into windows, GEMMs, one SDPA call, and the residual
        add reads the result straight from the window layout."""
        b, c, h, w = x.shape
        wh, ww = (self.window_size, self.window_size) if self.mode == "window" else (h, w)
        pad_h, pad_w = (-h) % wh, (-w) % ww
        hp, wp = h + pad_h, w + pad_w
        nh, nw = hp // wh, wp // ww
        key_valid = self._window_key_valid(b, h, w, wh, ww, mask, x.device)
        # GroupNorm needs the whole (unpadded) map; LayerNorm is per token and runs after windowing, where padded
        # tokens (zeros) are never keys and their outputs are cropped.
        xn = x if isinstance(self.norm, LayerNorm2d) else self.norm(x)
        if pad_h or pad_w:
            xn = F.pad(xn, (0, pad_w, 0, pad_h))
        # NHWC view first: free for a channels-last map, and the copy into windows then moves whole C-vectors
        tokens = xn.permute(0, 2, 3, 1).reshape(b, nh, wh, nw, ww, c).transpose(2, 3).reshape(-1, wh * ww, c)
        tokens = self._token_norm(tokens)
        q, k, v = (self._heads(self._project(tokens, slice(i * c, (i + 1) * c))) for i in range(3))
        o = self._gated_merge(self._sdpa(q, k, v, key_valid)).view(b, nh, nw, wh, ww, c)
        o = o.permute(0, 5, 1, 3, 2, 4)  # (B, C, nh, wh, nw, ww): a view in the map's order
        if not (pad_h or pad_w):  # one pass: read x and the windows, write the sum in x's memory layout
            return torch.add(x.view(b, c, nh, wh, nw, ww), o).view(b, c, h, w)
        if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
            o = o.reshape(b, c, hp, wp)
        else:  # keep a channels-last caller channels-last
            o = o.permute(0, 2, 3, 4, 5, 1).reshape(b, hp, wp, c).permute(0, 3, 1, 2)
        return x + o[:, :, :h, :w]

    def _tokens_pooled(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Global attention of every token over pooled keys/values, on the token layout. The normalised map is
        pooled before the k/v projection: a 1x1 conv commutes with averaging, and this way the projection runs on
        the pooled tokens only."""
        b, c, h, w = x.shape
        xn = x if isinstance(self.norm, LayerNorm2d) else self.norm(x)
        tokens = self._token_norm(xn.permute(0, 2, 3, 1).reshape(b, h * w, c))  # (B, HW, C)
        q = self._heads(self._project(tokens, slice(0, c)))
        hk, wk = self._key_grid(h, w)
        pooled = self._pool(tokens.view(b, h, w, c).permute(0, 3, 1, 2), hk, wk)  # (B, C, hk, wk)
        pooled = pooled.permute(0, 2, 3, 1).reshape(b, hk * wk, c)
        k, v = (self._heads(self._project(pooled, slice(i * c, (i + 1) * c))) for i in (1, 2))
        o = self._gated_merge(self._sdpa(q, k, v, self._pooled_key_valid(mask, b, hk, wk)))  # (B, HW, C)
        return torch.add(x, o.transpose(1, 2).view(b, c, h, w))

    def _sdpa(self, q: Tensor, k: Tensor, v: Tensor, key_valid: Tensor | None) -> Tensor:
        """SDPA, or while exporting global attention, the same math in query chunks of bounded score memory."""
        if self.export_score_budget and self.mode == "global":
            bias = torch.zeros(q.shape[0], 1, 1, k.shape[2], dtype=q.dtype, device=q.device)
            if key_valid is not None:
                bias = bias.masked_fill(~key_valid, float("-inf"))
            return torch.ops.inpainting.chunked_attention(q, k, v, bias, self.export_score_budget)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=key_valid)

    def _key_grid(self, h: int, w: int) -> tuple[int, int]:
        """Pooled key grid: ``kv_pool``-times smaller than the map, at most ``kv_grid`` per side when capped."""
        hk, wk = -(-h // self.kv_pool), -(-w // self.kv_pool)
        if self.kv_grid:
            if isinstance(hk, Tensor):  # torch.jit.trace records sizes as tensors
                return hk.clamp(max=self.kv_grid), wk.clamp(max=self.kv_grid)
            # sym_min: no shape guard (specialisation) when torch.export traces dynamic sizes
            hk, wk = torch.sym_min(hk, self.kv_grid), torch.sym_min(wk, self.kv_grid)
        return hk, wk

    def _pool(self, kv: Tensor, hk: int, wk: int) -> Tensor:
        """Average ``B x C x H x W`` over the adaptive-pooling cells of an ``hk x wk`` grid."""
        if not self.kv_grid:
            return F.adaptive_avg_pool2d(kv, (hk, wk))
        rows = adaptive_pool_matrix(kv.shape[-2], hk, kv)
        cols = adaptive_pool_matrix(kv.shape[-1], wk, kv)
        return rows @ kv @ cols.T

    def _pooled_key_valid(self, mask: Tensor | None, b: int, hk: int, wk: int) -> Tensor | None:
        if mask is None:
            return None
        # a pooled key is a hole only if its whole cell is missing (no share of known pixels), on the keys' own
        # cells: the same exportable pooling as the keys, so an exported mask-aware model runs at any size
        known = self._pool(1.0 - mask.to(self.gamma.dtype), hk, wk)
        key_valid = (known > 0).reshape(b, 1, 1, -1)
        return key_valid | ~key_valid.any(-1, keepdim=True)  # no known key at all: attend to every key

    def _window_key_valid(
        self, b: int, h: int, w: int, wh: int, ww: int, mask: Tensor | None, device: torch.device
    ) -> Tensor | None:
        """``(B*nWin, 1, 1, N)`` key validity (not padding, and not a hole when mask-aware), or None if all valid."""
        pad_h, pad_w = (-h) % wh, (-w) % ww
        if not (pad_h or pad_w or mask is not None):
            return None
        nh, nw = (h + pad_h) // wh, (w + pad_w) // ww
        real = torch.ones(b, 1, h, w, dtype=torch.bool, device=device)
        if pad_h or pad_w:
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
        return key_valid.unsqueeze(2)  # broadcast over heads and queries

    @staticmethod
    def _to_windows(m: Tensor, nh: int, wh: int, nw: int, ww: int) -> Tensor:
        """``B x 1 x Hp x Wp`` token flags -> ``(B*nWin) x 1 x N`` in the same window/token order as q/k/v."""
        b = m.shape[0]
        return m.view(b, nh, wh, nw, ww).permute(0, 1, 3, 2, 4).reshape(b * nh * nw, 1, wh * ww)


def adaptive_pool_matrix(size: int, out: int, like: Tensor) -> Tensor:
    """``out x size`` matrix of adaptive average pooling along one axis (row i averages ``[i*size/out]`` cells).

    Cells are ``[floor(i*size/out), ceil((i+1)*size/out))``, exactly ``adaptive_avg_pool``'s, built from ``arange``
    so the same graph is right for every size once exported (ONNX's ``AveragePool`` has a fixed kernel).
    """
    i = torch.arange(out, device=like.device)
    start = (i * size) // out
    end = ((i + 1) * size + out - 1) // out
    y = torch.arange(size, device=like.device)
    inside = (y[None, :] >= start[:, None]) & (y[None, :] < end[:, None])
    return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]


@torch.library.custom_op("inpainting::chunked_attention", mutates_args=())
def chunked_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, budget: int) -> Tensor:
    """softmax(q k^T / sqrt(d) + bias) v, over blocks of query rows whose scores hold <= ``budget`` elements.

    One op in an exported graph (see :func:`export_attention`; inpainting.export turns it into an ONNX ``Loop``);
    eager it is SDPA per row block, the same function. ``bias``: ``B x 1 x 1 x M``, 0 or -inf per key.
    """
    rows = max(1, budget // max(1, q.shape[0] * q.shape[1] * k.shape[2]))
    return torch.cat([F.scaled_dot_product_attention(qi, k, v, attn_mask=bias) for qi in q.split(rows, 2)], 2)


@chunked_attention.register_fake
def _chunked_attention_shape(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, budget: int) -> Tensor:
    return q.new_empty((*q.shape[:-1], v.shape[-1]))


@contextlib.contextmanager
def export_attention(net: nn.Module, budget: int = EXPORT_SCORE_BUDGET) -> Iterator[None]:
    """While active, every global :class:`SelfAttention2d` in ``net`` runs as :func:`chunked_attention`.

    For exporters to runtimes without a memory-efficient attention kernel: ONNX's MatMul + Softmax would build the
    whole ``queries x keys`` score matrix (7 GB per head for a 2048x1536 photo's crop).
    """
    blocks = [m for m in net.modules() if isinstance(m, SelfAttention2d)]
    for block in blocks:
        block.export_score_budget = budget
    try:
        yield
    finally:
        for block in blocks:
            block.export_score_budget = 0
