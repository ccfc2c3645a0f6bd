"""U-Net inpainting generator with configurable self-attention per resolution level.

Layout (L = len(channel_mults) levels, level i at 1/2**i resolution with ``base_channels * channel_mults[i]``
channels; the last level is the bottleneck)::

    stem 3x3 conv
    encoder level i < L-1:  blocks -> [attention_i] -> skip_i -> strided 3x3 conv (down)
    bottleneck (level L-1): blocks -> [attention_{L-1}] -> blocks
    decoder level i < L-1:  upsample + 3x3 conv -> concat skip_i -> blocks -> [attention_i]
    head 3x3 conv -> tanh

``attention[i]`` ("none" | "window" | "global") places one ``SelfAttention2d`` at level i, in the encoder and/or
the decoder as ``attention_in`` says, and always a single one in the middle of the bottleneck. The default puts
it in the decoder only: that is where hole features, already informed by the bottleneck's global attention, are
turned into pixels, and it halves the cost of the (memory-bound) high-resolution blocks (step times of each
placement: docs/benchmarks.md, "models"). Global attention belongs on small maps only (it costs O((HW)^2) FLOPs);
windows keep large maps linear. With every entry "none" this is the plain U-Net ablation: same weights otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpainting.errors import ConfigError
from inpainting.models.attention import SelfAttention2d
from inpainting.models.fill_prior import push_pull_fill
from inpainting.models.layers import LayerNorm2d, crop_to, group_norm_groups, pad_to_multiple
from inpainting.models.utils import count_parameters

__all__ = ["ATTENTION_CHOICES", "ConvBlock", "SAUNet", "count_parameters"]

ATTENTION_CHOICES = ("none", "window", "global")
ATTENTION_SIDES = ("both", "encoder", "decoder")
NORMS = ("group", "layer", "none")
ACTIVATIONS = ("silu", "leaky_relu")
UPSAMPLES = ("nearest", "bilinear")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(group_norm_groups(channels), channels)
    return LayerNorm2d(channels) if kind == "layer" else nn.Identity()


def _act(kind: str) -> nn.Module:
    return nn.SiLU() if kind == "silu" else nn.LeakyReLU(0.2)


class ConvBlock(nn.Module):
    """Residual block: (3x3 conv, norm, act, 3x3 conv, norm) + skip, then act; a residual path eases deep training."""

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "group", activation: str = "silu"
    ) -> None:
        super().__init__()
        bias = norm == "none"  # a bias right before a normalisation is redundant
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
            _norm(norm, out_channels),
            _act(activation),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
            _norm(norm, out_channels),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
        self.act = _act(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.skip(x))


class SAUNet(nn.Module):
    """Self-attention U-Net: ``forward(masked_image, mask) -> image`` in [-1, 1], for any H x W.

    Args:
        in_channels: channels of ``cat(masked_image, mask)``; 4 for RGB.
        out_channels: output image channels.
        base_channels: channels at full resolution; level i has ``base_channels * channel_mults[i]``.
        channel_mults: one multiplier per level; ``len - 1`` downsamplings.
        blocks_per_level: residual conv blocks per level (encoder, decoder, and each half of the bottleneck).
        attention: per level, ``"none"``, ``"window"`` or ``"global"``; the last entry is the bottleneck.
        num_heads: attention heads (must divide the channels of every level that has attention).
        window_size: window side for ``"window"`` levels (maps are padded to it inside the attention block).
        mask_aware: hole tokens cannot serve as attention keys (see ``SelfAttention2d``).
        qkv_kernel: accepted for configs and generator files that still write it; only 1 (the attention blocks'
            1x1 q/k/v projections).
        attention_in: where a non-bottleneck level's attention goes: ``"decoder"``, ``"encoder"`` or ``"both"``.
        kv_pool: ``"global"`` levels only: keys/values from a ``kv_pool``-times average-pooled map (attention cost
            divided by ``kv_pool**2``; every query still sees the whole image). 1 = full-resolution keys. The default
            2 makes the 64x64 bottleneck of a 256 input attend over 32x32 keys instead of all 4096 (step times:
            docs/benchmarks.md, "Training step: the price of attention").
        norm: ``"group"`` (GroupNorm), ``"layer"`` (per-pixel LayerNorm over channels, as in ConvNeXt) or
            ``"none"``. GroupNorm's statistics span the whole map, so they mix hole and known pixels and change
            with the image's size and content: a net trained on textured 128² crops applies a different gain to a
            smooth 900x600 photo and paints a dark ring along the hole's edge. ``"layer"`` uses each pixel's own
            channels only, so a pixel's output depends on its receptive field alone (also in the attention blocks'
            pre-norm).
        activation: ``"silu"`` or ``"leaky_relu"``.
        upsample: decoder interpolation before its 3x3 conv, ``"nearest"`` or ``"bilinear"``.
        fill_prior_relax: Jacobi sweeps per pyramid level that turn the push-pull fill into a harmonic one (exact on
            linear colour ramps; see ``inpainting.models.fill_prior``). 0 = plain push-pull.
        attention_gate_init: initial value of each attention block's residual gate ``gamma``. 0 (SAGAN) makes a new
            block the identity, but then its projection gets no gradient until the gate has grown, and the gates
            stay small for many steps; 1 is a plain pre-norm transformer residual. With ``fill_prior`` the head is
            zero-initialised, so the untrained net returns the prior whatever the gates are.
        fill_prior: start from a push-pull fill of the hole (``inpainting.models.fill_prior``): the net sees the
            filled image instead of zeros and predicts a correction to it (zero-initialised head, so an untrained
            net returns the push-pull fill). False is the plain design: zeros in, ``tanh`` image out.
        kv_grid: ``"global"`` levels only: at most ``kv_grid`` x ``kv_grid`` pooled keys/values whatever the input
            size, so global attention costs time and memory linear in pixels (0 = no cap: keys grow with the input
            and the cost with its square). 16 leaves a 256² input (32x32 pooled keys) at 16x16.
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 3,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 4),
        blocks_per_level: int = 1,
        attention: Sequence[str] = ("none", "window", "global"),
        num_heads: int = 4,
        window_size: int = 8,
        mask_aware: bool = False,
        qkv_kernel: int = 1,
        attention_in: str = "decoder",
        kv_pool: int = 2,
        norm: str = "group",
        activation: str = "silu",
        upsample: str = "nearest",
        fill_prior: bool = False,
        fill_prior_relax: int = 0,
        attention_gate_init: float = 0.0,
        kv_grid: int = 0,
    ) -> None:
        super().__init__()
        channel_mults = [int(m) for m in channel_mults]
        attention = [str(a) for a in attention]
        if not channel_mults or any(m < 1 for m in channel_mults):
            raise ValueError(f"channel_mults must be a non-empty list of positive ints, got {channel_mults}")
        if len(attention) != len(channel_mults):
            raise ValueError(
                f"attention needs one entry per level ({len(channel_mults)}), got {len(attention)}: {attention}"
            )
        bad = [a for a in attention if a not in ATTENTION_CHOICES]
        if bad:
            raise ValueError(f"attention entries must be in {ATTENTION_CHOICES}, got {bad}")
        if base_channels < 1 or blocks_per_level < 1 or in_channels < 2 or out_channels < 1:
            raise ValueError(
                "base_channels, blocks_per_level, out_channels must be >= 1 and in_channels >= 2, got "
                f"{base_channels}, {blocks_per_level}, {out_channels}, {in_channels}"
            )
        if attention_in not in ATTENTION_SIDES:
            raise ValueError(f"attention_in must be one of {ATTENTION_SIDES}, got {attention_in!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")
        if qkv_kernel != 1:
            raise ConfigError(
                f"qkv_kernel must be 1 (1x1 q/k/v projections; larger kernels are no longer supported), got {qkv_kernel}"
            )

        self.in_channels = in_channels
        self.num_levels = len(channel_mults)
        self.attention = attention
        self.mask_aware = mask_aware
        self.upsample_mode = upsample
        self.fill_prior = bool(fill_prior)
        if fill_prior_relax < 0:
            raise ValueError(f"fill_prior_relax must be >= 0, got {fill_prior_relax}")
        self.fill_prior_relax = int(fill_prior_relax)
        chs = [base_channels * m for m in channel_mults]

        def blocks(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                *[
                    ConvBlock(c_in if j == 0 else c_out, c_out, norm, activation)
                    for j in range(blocks_per_level)
                ]
            )

        def attn(level: int) -> SelfAttention2d:
            kind = attention[level]
            return SelfAttention2d(
                chs[level],
                num_heads,
                kind,
                window_size,
                mask_aware=mask_aware,
                kv_pool=kv_pool if kind == "global" else 1,
                norm="layer" if norm == "layer" else "group",
                gate_init=attention_gate_init,
                kv_grid=kv_grid if kind == "global" else 0,
            )

        last = self.num_levels - 1
        self.stem = nn.Conv2d(in_channels, chs[0], 3, padding=1)
        self.enc = nn.ModuleList([blocks(chs[i], chs[i]) for i in range(self.num_levels)])
        self.down = nn.ModuleList(
            [nn.Conv2d(chs[i], chs[i + 1], 3, stride=2, padding=1) for i in range(last)]
        )
        self.mid = blocks(chs[last], chs[last])
        self.up = nn.ModuleList([nn.Conv2d(chs[i + 1], chs[i], 3, padding=1) for i in range(last)])
        self.dec = nn.ModuleList([blocks(2 * chs[i], chs[i]) for i in range(last)])
        # Only configured blocks exist, keyed "enc{i}", "dec{i}" (i < L-1) and "mid": the "none" ablation has none.
        self.attn = nn.ModuleDict()
        for i, kind in enumerate(attention):
            if kind == "none":
                continue
            if i == last:
                self.attn["mid"] = attn(i)
            else:
                if attention_in in ("both", "encoder"):
                    self.attn[f"enc{i}"] = attn(i)
                if attention_in in ("both", "decoder"):
                    self.attn[f"dec{i}"] = attn(i)
        self.head = nn.Conv2d(chs[0], out_channels, 3, padding=1)
        if self.fill_prior:
            if out_channels != in_channels - 1:
                raise ValueError(
                    f"fill_prior needs out_channels == image channels (in_channels - 1), got {out_channels} "
                    f"and in_channels={in_channels}"
                )
            nn.init.zeros_(self.head.weight)  # untrained: output == the push-pull fill
            nn.init.zeros_(self.head.bias)

    @property
    def size_multiple(self) -> int:
        """Inputs are padded internally to a multiple of this (the total downsampling); windows pad themselves."""
        return 2 ** (self.num_levels - 1)

    def _attend(self, key: str, h: Tensor, mask: Tensor) -> Tensor:
        if key not in self.attn:
            return h
        return self.attn[key](h, mask if self.mask_aware else None)

    def _prior(self, masked_image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The first guess the net refines and the mask channel it is shown with (padded input; see ``fill_prior``)."""
        if not self.fill_prior:
            return masked_image, mask
        return push_pull_fill(masked_image, mask, relax=self.fill_prior_relax), mask

    def forward(self, masked_image: Tensor, mask: Tensor) -> Tensor:
        """``masked_image``: B x 3 x H x W in [-1, 1] (holes zeroed); ``mask``: B x 1 x H x W, 1 = missing."""
        if masked_image.shape[1] + mask.shape[1] != self.in_channels:
            raise ValueError(
                f"image ({masked_image.shape[1]} ch) + mask ({mask.shape[1]} ch) must give in_channels="
                f"{self.in_channels}"
            )
        # The padded border is "missing": zero image, mask 1, exactly how a hole is presented to the net.
        masked_image, (height, width) = pad_to_multiple(masked_image, self.size_multiple)
        mask, _ = pad_to_multiple(mask.to(masked_image.dtype), self.size_multiple, value=1.0)

        prior, stem_mask = self._prior(masked_image, mask)
        h = self.stem(torch.cat([prior, stem_mask], dim=1))
        skips = []
        for i in range(self.num_levels - 1):
            h = self._attend(f"enc{i}", self.enc[i](h), mask)
            skips.append(h)
            h = self.down[i](h)
        h = self.enc[-1](h)
        h = self._attend("mid", h, mask)
        h = self.mid(h)
        for i in reversed(range(self.num_levels - 1)):
            skip = skips[i]
            h = F.interpolate(h, size=skip.shape[-2:], mode=self.upsample_mode)
            h = self.up[i](h)
            h = self.dec[i](torch.cat([h, skip], dim=1))
            h = self._attend(f"dec{i}", h, mask)
        out = torch.clamp(prior + self.head(h), -1.0, 1.0) if self.fill_prior else torch.tanh(self.head(h))
        return crop_to(out, height, width)
