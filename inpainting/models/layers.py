"""Small building blocks the networks share: norms, the hole mask at feature resolution, padding to a multiple."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LayerNorm2d", "crop_to", "group_norm_groups", "hole_tokens", "pad_to_multiple"]


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
        # layer_norm over a channels-last view: one fused kernel instead of mean/var by hand
        channels_last = x.permute(0, 2, 3, 1)
        return F.layer_norm(channels_last, (x.shape[1],), self.weight, self.bias, self.eps).permute(
            0, 3, 1, 2
        )


def pad_to_multiple(x: Tensor, multiple: int, value: float = 0.0) -> tuple[Tensor, tuple[int, int]]:
    """``(x padded at the bottom/right to a multiple of multiple, (h, w) before padding)``; ``value`` fills.

    The networks pad the image with 0 and the hole mask with 1, so the border reads as a hole. ``x`` comes back
    as it is (no copy) when it is aligned already; pair with :func:`crop_to`.
    """
    height, width = x.shape[-2], x.shape[-1]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), value=value)
    return x, (height, width)


def crop_to(x: Tensor, height: int, width: int) -> Tensor:
    """The top-left ``height x width`` of ``x`` (undoes :func:`pad_to_multiple`)."""
    return x[..., :height, :width]
