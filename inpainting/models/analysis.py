"""Tools for tests and benchmarks, never used by a network: FLOP counting and the seed's naive attention block.

* :func:`count_flops` counts FLOPs with ``torch.utils.flop_counter``, attention included (:data:`FLOP_MAPPING`
  teaches the counter the SDPA ops it does not know).
* :class:`NaiveSelfAttention2d` is the seed paper's block, the benchmark baseline. SAGAN-style: 3x3 convolutions give
  q, k (C // 8 channels) and v (C channels); the energy ``q^T k`` is a full ``(H*W) x (H*W)`` matrix built with
  ``bmm``, soft-maxed, applied to v and added back scaled by a learnable gamma. That matrix is 16 GiB per image at
  256x256, which is why :class:`~inpainting.models.attention.SelfAttention2d` exists. Do not use it for training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

import inpainting.models.attention  # noqa: F401  (registers torch.ops.inpainting.chunked_attention)

__all__ = ["FLOP_MAPPING", "NaiveSelfAttention2d", "count_flops", "sdpa_flops"]


def sdpa_flops(
    query: Tensor, key: Tensor, value: Tensor, *args: Any, out_shape: Any = None, **kw: Any
) -> int:
    """torch's SDPA formula (4 N M d per head) for an attention op the counter does not know."""
    return sdpa_flop_count(query, key, value)


#: ``custom_mapping`` for ``FlopCounterMode``: CPU SDPA's op and the exported chunked attention, as SDPA
FLOP_MAPPING = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: sdpa_flops,
    torch.ops.inpainting.chunked_attention: sdpa_flops,
}


def count_flops(fn: Callable[..., Any], *args: Any) -> int:
    """FLOPs of ``fn(*args)`` by ``torch.utils.flop_counter`` (matmuls, convolutions, attention), no grad.

    The counter does not know CPU SDPA's op (``_scaled_dot_product_flash_attention_for_cpu``) nor
    :func:`~inpainting.models.attention.chunked_attention`; both are counted with torch's own SDPA formula.
    """
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=FLOP_MAPPING) as counter:
        fn(*args)
    return int(counter.get_total_flops())


class NaiveSelfAttention2d(nn.Module):
    """Single-head global attention with an explicit ``(H*W) x (H*W)`` energy matrix (the seed's design)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        qk_channels = max(channels // 8, 1)
        self.channels = channels
        self.query = nn.Conv2d(channels, qk_channels, 3, padding=1)
        self.key = nn.Conv2d(channels, qk_channels, 3, padding=1)
        self.value = nn.Conv2d(channels, channels, 3, padding=1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x``: B x C x H x W. ``mask`` is accepted for call compatibility with SelfAttention2d and ignored."""
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # B x N x C'
        k = self.key(x).flatten(2)  # B x C' x N
        v = self.value(x).flatten(2)  # B x C x N
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # B x N x N: the allocation that does not scale
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out

    @staticmethod
    def energy_bytes(height: int, width: int, element_size: int = 4) -> int:
        """Bytes of one image's energy matrix at this resolution (what the forward pass must allocate)."""
        n = height * width
        return n * n * element_size
