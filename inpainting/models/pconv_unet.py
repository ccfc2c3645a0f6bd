"""Partial-convolution U-Net (Liu et al. 2018, "Image Inpainting for Irregular Holes Using Partial Convolutions").

A partial convolution only looks at valid pixels and re-normalises by how many it saw (paper, eq. 1)::

    x' = W^T (X * M) * sum(1) / sum(M) + b    if sum(M) > 0
    x' = 0                                     otherwise

where ``M`` is the window of the validity mask (1 = known, the paper's convention; this module converts from the
project's 1 = missing at the network's input) and ``sum(1)`` the window's size (channels x kh x kw). The bias is
added after the scaling and only where the window saw something, as in the paper. The mask is then updated
(eq. 2): a location becomes valid when its window contained at least one valid input, so holes shrink layer by
layer. With multi-channel masks (the decoder concatenates features and masks of two sources), ``sum(M)`` counts
valid (channel, pixel) pairs, as in NVIDIA's reference implementation's ``multi_channel`` mode.

The paper's network: 8 encoder PConv layers (kernels 7,5,5,3,3,3,3,3, stride 2, channels 64..512, BatchNorm
except the first, ReLU), decoder of nearest-neighbour 2x upsampling + concatenation of the skip's features *and*
masks + 3x3 PConv, BatchNorm, LeakyReLU(0.2); the last layer also concatenates the input image and mask and has
no norm/activation. Ours keeps that design but is sized for CPU: ``base_channels * channel_mults`` (default
32/64/128/256/256, five levels, 1/32 bottleneck instead of 1/256), and ends in ``tanh`` to meet the project's
[-1, 1] output contract (the paper's output layer is linear).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpainting.models.layers import crop_to, group_norm_groups, pad_to_multiple

__all__ = ["PConvUNet", "PartialConv2d"]

NORMS = ("batch", "group", "none")


class PartialConv2d(nn.Module):
    """``forward(x, valid) -> (y, new_valid)``: a partial convolution and its mask update.

    ``valid`` is ``B x 1 x H x W`` (shared by all input channels) or ``B x C_in x H x W`` (per channel), 1 = known.
    ``new_valid`` is ``B x 1 x H' x W'``: every output channel sees the same window, so the update is shared.
    Zero padding counts as missing (the paper's follow-up "partial convolution based padding"), so even a fully
    valid mask re-weights border outputs; away from the border it is an ordinary convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        self.stride, self.padding, self.dilation = stride, padding, dilation
        # sum(1) of the paper: the number of (channel, pixel) pairs one window covers
        self.window_size = float(in_channels * kernel_size * kernel_size)
        self.register_buffer("ones", torch.ones(1, 1, kernel_size, kernel_size), persistent=False)

    def forward(self, x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        if valid.shape[1] not in (1, self.in_channels):
            raise ValueError(
                f"mask must have 1 or {self.in_channels} channels, got {valid.shape[1]} (shape {tuple(valid.shape)})"
            )
        valid = valid.to(x.dtype)
        with torch.no_grad():
            # sum(M) per output location: window sum of the channel-summed mask
            per_pixel = valid if valid.shape[1] == 1 else valid.sum(dim=1, keepdim=True)
            count = F.conv2d(
                per_pixel,
                self.ones.to(x.dtype),
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
            )
            if valid.shape[1] == 1:
                count = count * self.in_channels
            new_valid = (count > 0).to(x.dtype)
            scale = self.window_size / count.clamp_min(1.0) * new_valid
        out = self.conv(x * valid) * scale
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1) * new_valid
        return out, new_valid


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(group_norm_groups(channels), channels)
    return nn.Identity()


class _PConvLayer(nn.Module):
    """PConv -> norm -> activation, passing the updated mask along."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, norm: str, activation: nn.Module | None
    ) -> None:
        super().__init__()
        self.pconv = PartialConv2d(cin, cout, kernel, stride, bias=norm == "none" or activation is None)
        self.norm = _norm(norm, cout)
        self.act = activation if activation is not None else nn.Identity()

    def forward(self, x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        x, valid = self.pconv(x, valid)
        return self.act(self.norm(x)), valid


class PConvUNet(nn.Module):
    """Partial-convolution U-Net: ``forward(masked_image, mask) -> image`` in [-1, 1], for any H x W.

    Args:
        in_channels: image channels (3); the mask is not a feature channel here, it drives the partial convs.
        out_channels: output channels.
        base_channels: channels of the first encoder layer (the paper: 64).
        channel_mults: one per encoder level (each halves the resolution); the paper's 8 levels are
            ``[1, 2, 4, 8, 8, 8, 8, 8]`` with base 64.
        kernel_sizes: encoder kernel per level (the paper: 7, 5, 5, then 3); shorter lists repeat their last entry.
        norm: ``"batch"`` (the paper), ``"group"`` or ``"none"``; never on the first encoder layer or the output.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 4, 8, 8),
        kernel_sizes: Sequence[int] = (7, 5, 5, 3),
        norm: str = "batch",
    ) -> None:
        super().__init__()
        channel_mults = [int(m) for m in channel_mults]
        kernel_sizes = [int(k) for k in kernel_sizes]
        if not channel_mults or any(m < 1 for m in channel_mults):
            raise ValueError(f"channel_mults must be a non-empty list of positive ints, got {channel_mults}")
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd positive ints, got {kernel_sizes}")
        if base_channels < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"channel counts must be >= 1, got {in_channels}, {out_channels}, {base_channels}"
            )
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.in_channels = in_channels
        self.num_levels = len(channel_mults)
        chs = [base_channels * m for m in channel_mults]
        kernels = [kernel_sizes[min(i, len(kernel_sizes) - 1)] for i in range(self.num_levels)]

        self.enc = nn.ModuleList()
        cin = in_channels
        for i, (cout, k) in enumerate(zip(chs, kernels, strict=True)):
            self.enc.append(_PConvLayer(cin, cout, k, 2, "none" if i == 0 else norm, nn.ReLU()))
            cin = cout
        # decoder level i: upsample(level i+1 or the bottleneck) ++ skip of level i -> chs[i]; the last one
        # (i = -1) concatenates the input image and its mask and outputs the picture
        self.dec = nn.ModuleList()
        for i in reversed(range(self.num_levels - 1)):
            self.dec.append(_PConvLayer(chs[i + 1] + chs[i], chs[i], 3, 1, norm, nn.LeakyReLU(0.2)))
        self.out = _PConvLayer(chs[0] + in_channels, out_channels, 3, 1, "none", None)

    @property
    def size_multiple(self) -> int:
        """Inputs are padded internally to a multiple of this (the total downsampling)."""
        return 2**self.num_levels

    def forward(self, masked_image: Tensor, mask: Tensor) -> Tensor:
        """``masked_image``: B x C x H x W in [-1, 1] (holes zeroed); ``mask``: B x 1 x H x W, 1 = missing."""
        if masked_image.shape[1] != self.in_channels or mask.shape[1] != 1:
            raise ValueError(
                f"expected a {self.in_channels}-channel image and a 1-channel mask, got "
                f"{tuple(masked_image.shape)} and {tuple(mask.shape)}"
            )
        # the padded border is missing, like a hole
        masked_image, (height, width) = pad_to_multiple(masked_image, self.size_multiple)
        valid, _ = pad_to_multiple(1.0 - mask.to(masked_image.dtype), self.size_multiple, value=0.0)

        skips: list[tuple[Tensor, Tensor]] = [(masked_image, valid)]
        h, v = masked_image, valid
        for layer in self.enc:
            h, v = layer(h, v)
            skips.append((h, v))
        skips.pop()  # the bottleneck is not its own skip
        for layer in [*self.dec, self.out]:
            skip_h, skip_v = skips.pop()
            h = F.interpolate(h, size=skip_h.shape[-2:], mode="nearest")
            v = F.interpolate(v, size=skip_h.shape[-2:], mode="nearest")
            # concatenated features get concatenated per-channel masks (paper, section 3.3)
            valid_cat = torch.cat(
                [v.expand(-1, h.shape[1], -1, -1), skip_v.expand(-1, skip_h.shape[1], -1, -1)], dim=1
            )
            h, v = layer(torch.cat([h, skip_h], dim=1), valid_cat)
        return crop_to(torch.tanh(h), height, width)
