"""DeepFill v2-style generator: gated convolutions, coarse-to-fine, contextual attention.

* Gated convolution (Yu et al. 2019, "Free-Form Image Inpainting with Gated Convolution"): one convolution
  produces features and a gate, ``out = act(features) * sigmoid(gate)``, a soft, learned, per-channel validity mask
  that replaces the hand-made mask update of partial convolutions. ELU activation and no normalisation, as there.
* Coarse-to-fine (Yu et al. 2018, "Generative Image Inpainting with Contextual Attention"; kept in v2): a coarse
  network of strided and dilated convolutions (dilations 2, 4, 8, 16 at 1/4 resolution) predicts a first fill; its
  result, pasted into the known pixels, feeds a refinement network with two branches: the same dilated "hallucination"
  branch and a contextual-attention branch; the branches are concatenated and decoded (nearest 2x upsampling + conv).
  Both stages' outputs are trained with L1 (DeepFill's "ae loss"); :meth:`GatedCANet.forward_stages` returns both
  (the training step calls it; ``forward`` returns the fine stage only).
* Contextual attention (Yu et al. 2018, section 3.2): at reduced resolution (1/4 of the image, and ``rate=2``
  further for matching), 3x3 patches of the *known* region are keys; each location's 3x3 patch is matched to all
  keys by cosine similarity, a softmax over the similarities (scaled by 10) weighs the keys, and the output is the
  same weighting of the full-resolution (``2*rate`` x ``2*rate``) patches, pasted back by overlap-add (a transposed
  convolution in the original; ``fold`` here, divided by the overlap count). Patches that touch a hole are never keys.
  The paper's optional "attention propagation" (fuse) step is not implemented.

Sizes: DeepFill v2 uses ``cnum = 48``; the default ``base_channels = 24`` here is sized for CPU (about a quarter of the
MACs). Output ends in ``tanh`` (as DeepFill v2's released code) to meet the [-1, 1] contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpainting.models.layers import crop_to, pad_to_multiple

__all__ = ["ContextualAttention", "GatedCANet", "GatedConv2d", "contextual_attention"]

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2)}


class GatedConv2d(nn.Module):
    """``act(conv_f(x)) * sigmoid(conv_g(x))`` with both convolutions fused into one of ``2 * out_channels``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        activation: str = "elu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding, dilation)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        features, gate = self.conv(x).chunk(2, dim=1)
        return self.act(features) * torch.sigmoid(gate)


class GatedUpConv2d(nn.Module):
    """DeepFill's ``gen_deconv``: nearest-neighbour 2x upsampling, then a 3x3 gated convolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = GatedConv2d(in_channels, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def contextual_attention(
    features: Tensor,
    hole: Tensor,
    patch_size: int = 3,
    rate: int = 2,
    softmax_scale: float = 10.0,
    return_attention: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Fill every location of ``features`` with a softmax-weighted mix of known patches (Yu et al. 2018).

    Args:
        features: ``B x C x H x W``; H and W must be multiples of ``rate``.
        hole: ``B x 1 x H x W``, 1 where the feature is (partly) a hole; such patches are never keys.
        patch_size: side of the matching patches (3 in the paper).
        rate: matching runs on ``rate``-times average-pooled maps (the paper: 2); reconstruction pastes
            ``2 * rate`` patches at stride ``rate`` (``patch_size`` patches at stride 1 when ``rate == 1``).
        softmax_scale: temperature of the softmax over cosine similarities (10 in the paper).
        return_attention: also return the ``B x Q x K`` attention (queries and keys in row-major order on the
            ``H / rate x W / rate`` grid).

    Cosine similarity: query and key patches are both unit-normalised (the released code normalised only keys;
    the paper's formula is the cosine). A query with no valid key at all (the whole map is a hole) gets zeros.
    """
    b, c, h, w = features.shape
    if rate < 1 or (rate > 1 and rate % 2):
        raise ValueError(f"rate must be 1 or even, got {rate}")
    if h % rate or w % rate:
        raise ValueError(f"features {h}x{w} must be multiples of rate={rate} (pad first)")
    if patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be odd, got {patch_size}")
    hole = hole.to(features.dtype)
    if rate > 1:
        small = F.avg_pool2d(features, rate)  # cell average: centred like the 2*rate raw patches below
        small_hole = F.max_pool2d(hole, rate)  # one missing pixel makes the cell a hole
    else:
        small, small_hole = features, hole
    pad = patch_size // 2
    patches = F.unfold(small, patch_size, padding=pad)  # B x (C k k) x L
    patches = patches / patches.norm(dim=1, keepdim=True).clamp_min(1e-4)
    scores = torch.bmm(patches.transpose(1, 2), patches) * softmax_scale  # B x Q x K (Q = K = L)
    touched = F.max_pool2d(small_hole, patch_size, stride=1, padding=pad)  # key window has a hole pixel
    valid_key = touched.flatten(1) == 0  # B x K
    # a large finite negative (not -inf) keeps the backward pass free of NaN when a row has no valid key
    scores = scores.masked_fill(~valid_key[:, None, :], -1e4)
    attention = torch.softmax(scores, dim=-1) * valid_key.any(dim=1).to(scores.dtype)[:, None, None]

    raw_kernel = 2 * rate if rate > 1 else patch_size
    raw_pad = (raw_kernel - rate) // 2
    raw = F.unfold(features, raw_kernel, stride=rate, padding=raw_pad)  # B x (C kr kr) x K
    columns = torch.bmm(raw, attention.transpose(1, 2))  # B x (C kr kr) x Q
    out = F.fold(columns, (h, w), raw_kernel, stride=rate, padding=raw_pad)
    ones = torch.ones(
        1, raw_kernel * raw_kernel, columns.shape[-1], dtype=features.dtype, device=features.device
    )
    overlap = F.fold(ones, (h, w), raw_kernel, stride=rate, padding=raw_pad)
    out = out / overlap.clamp_min(1.0)
    return (out, attention) if return_attention else out


class ContextualAttention(nn.Module):
    """:func:`contextual_attention` as a module taking the image-resolution hole mask (1 = missing)."""

    def __init__(self, patch_size: int = 3, rate: int = 2, softmax_scale: float = 10.0) -> None:
        super().__init__()
        self.patch_size, self.rate, self.softmax_scale = patch_size, rate, softmax_scale

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        h, w = features.shape[-2:]
        hole = F.adaptive_max_pool2d(mask.to(features.dtype), (h, w))  # any missing pixel in the cell
        features, _ = pad_to_multiple(features, self.rate)
        hole, _ = pad_to_multiple(hole, self.rate, value=1.0)
        out = contextual_attention(features, hole, self.patch_size, self.rate, self.softmax_scale)
        return crop_to(out, h, w)


def _dilated(channels: int, dilations: Sequence[int]) -> list[nn.Module]:
    return [GatedConv2d(channels, channels, 3, dilation=int(d)) for d in dilations]


class GatedCANet(nn.Module):
    """DeepFill v2-style coarse-to-fine generator: ``forward(masked_image, mask) -> image`` in [-1, 1].

    Args:
        in_channels: image channels; the networks see ``image, ones, mask`` (DeepFill's input: the ones channel
            tells zero padding from the image border).
        out_channels: output channels.
        base_channels: DeepFill's ``cnum`` (48 there); layers use 1/2, 1, 2 and 4 times it.
        dilations: the dilated gated convolutions at 1/4 resolution (both stages).
        contextual_attention: False turns the attention branch into plain gated convs (the ablation).
        attention_rate, patch_size, softmax_scale: see :func:`contextual_attention`.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 24,
        dilations: Sequence[int] = (2, 4, 8, 16),
        contextual_attention: bool = True,
        attention_rate: int = 2,
        patch_size: int = 3,
        softmax_scale: float = 10.0,
    ) -> None:
        super().__init__()
        if base_channels < 2 or in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"base_channels must be >= 2 and channels >= 1, got {base_channels}, {in_channels}, {out_channels}"
            )
        if attention_rate < 1 or (attention_rate > 1 and attention_rate % 2):
            raise ValueError(f"attention_rate must be 1 or even, got {attention_rate}")
        c = base_channels
        half = max(c // 2, 1)
        cin = in_channels + 2
        self.in_channels = in_channels
        self.attention_rate = attention_rate
        self.coarse = nn.Sequential(
            GatedConv2d(cin, c, 5),
            GatedConv2d(c, 2 * c, 3, stride=2),
            GatedConv2d(2 * c, 2 * c, 3),
            GatedConv2d(2 * c, 4 * c, 3, stride=2),
            GatedConv2d(4 * c, 4 * c, 3),
            GatedConv2d(4 * c, 4 * c, 3),
            *_dilated(4 * c, dilations),
            GatedConv2d(4 * c, 4 * c, 3),
            GatedConv2d(4 * c, 4 * c, 3),
            GatedUpConv2d(4 * c, 2 * c),
            GatedConv2d(2 * c, 2 * c, 3),
            GatedUpConv2d(2 * c, c),
            GatedConv2d(c, half, 3),
            nn.Conv2d(half, out_channels, 3, padding=1),
        )
        self.refine_conv = nn.Sequential(
            GatedConv2d(cin, c, 5),
            GatedConv2d(c, c, 3, stride=2),
            GatedConv2d(c, 2 * c, 3),
            GatedConv2d(2 * c, 2 * c, 3, stride=2),
            GatedConv2d(2 * c, 4 * c, 3),
            GatedConv2d(4 * c, 4 * c, 3),
            *_dilated(4 * c, dilations),
        )
        self.refine_attn_in = nn.Sequential(
            GatedConv2d(cin, c, 5),
            GatedConv2d(c, c, 3, stride=2),
            GatedConv2d(c, 2 * c, 3),
            GatedConv2d(2 * c, 4 * c, 3, stride=2),
            GatedConv2d(4 * c, 4 * c, 3),
            GatedConv2d(4 * c, 4 * c, 3, activation="relu"),  # DeepFill: ReLU right before the attention
        )
        self.attention = (
            ContextualAttention(patch_size, attention_rate, softmax_scale) if contextual_attention else None
        )
        self.refine_attn_out = nn.Sequential(GatedConv2d(4 * c, 4 * c, 3), GatedConv2d(4 * c, 4 * c, 3))
        self.refine_out = nn.Sequential(
            GatedConv2d(8 * c, 4 * c, 3),
            GatedConv2d(4 * c, 4 * c, 3),
            GatedUpConv2d(4 * c, 2 * c),
            GatedConv2d(2 * c, 2 * c, 3),
            GatedUpConv2d(2 * c, c),
            GatedConv2d(c, half, 3),
            nn.Conv2d(half, out_channels, 3, padding=1),
        )

    @property
    def size_multiple(self) -> int:
        """Inputs are padded internally to a multiple of this (two 2x downsamplings, then the attention rate)."""
        return 4 * self.attention_rate

    def forward_stages(self, masked_image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(coarse, fine)``, both ``B x C x H x W`` in [-1, 1]."""
        if masked_image.shape[1] != self.in_channels or mask.shape[1] != 1:
            raise ValueError(
                f"expected a {self.in_channels}-channel image and a 1-channel mask, got "
                f"{tuple(masked_image.shape)} and {tuple(mask.shape)}"
            )
        m = self.size_multiple
        mask = mask.to(masked_image.dtype)
        # padded border: a hole, outside the image (ones channel 0 there)
        ones, _ = pad_to_multiple(torch.ones_like(mask), m)
        masked_image, (height, width) = pad_to_multiple(masked_image, m)
        mask, _ = pad_to_multiple(mask, m, value=1.0)
        coarse = torch.tanh(self.coarse(torch.cat([masked_image, ones, mask], dim=1)))
        pasted = coarse * mask + masked_image * (1.0 - mask)
        x = torch.cat([pasted, ones, mask], dim=1)
        hallucinated = self.refine_conv(x)
        attended = self.refine_attn_in(x)
        if self.attention is not None:
            attended = self.attention(attended, mask)
        attended = self.refine_attn_out(attended)
        fine = torch.tanh(self.refine_out(torch.cat([hallucinated, attended], dim=1)))
        return crop_to(coarse, height, width), crop_to(fine, height, width)

    def forward(self, masked_image: Tensor, mask: Tensor) -> Tensor:
        """``masked_image``: B x C x H x W in [-1, 1] (holes zeroed); ``mask``: B x 1 x H x W, 1 = missing."""
        return self.forward_stages(masked_image, mask)[1]
