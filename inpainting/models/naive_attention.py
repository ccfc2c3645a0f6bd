"""The seed paper's self-attention block, kept only as the benchmark baseline.

SAGAN-style: 3x3 convolutions give q, k (C // 8 channels) and v (C channels); the energy ``q^T k`` is a full
``(H*W) x (H*W)`` matrix built with ``bmm``, soft-maxed, applied to v and added back scaled by a learnable gamma.
That matrix is 16 GiB per image at 256x256, which is why ``SelfAttention2d`` exists. Do not use this for training.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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
