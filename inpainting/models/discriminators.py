"""Patch discriminators for adversarial inpainting.

* :class:`PatchGAN` (Isola et al. 2017, pix2pix's ``NLayerDiscriminator``; LaMa's discriminator too): 4x4
  convolutions, stride 2 for ``num_layers`` layers then stride 1, LeakyReLU(0.2), a norm on every layer but the first;
  each output logit judges one overlapping patch (70x70 pixels for 3 layers).
* :class:`SNPatchGAN` (Yu et al. 2019, DeepFill v2): six 5x5 stride-2 convolutions (64, 128, 256, 256, 256, 256
  channels for base 64) with spectral normalisation (Miyato et al. 2018) and LeakyReLU, no other norm; the input is
  the image *and the mask*; every element of the last map is a patch score, used with the hinge loss.

Both take ``forward(image, mask=None, return_features=False)``: image ``B x 3 x H x W`` in [-1, 1], mask
``B x 1 x H x W`` (1 = missing) when ``use_mask``; they return logits ``B x 1 x h x w`` and, with
``return_features``, also the list of intermediate activations (for the feature-matching loss).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from inpainting.models.layers import group_norm_groups

__all__ = ["PatchGAN", "SNPatchGAN"]

NORMS = ("batch", "instance", "group", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(group_norm_groups(channels), channels)
    return nn.Identity()


class _FeatureDiscriminator(nn.Module):
    """Runs ``self.blocks`` then ``self.head``, collecting each block's output as a feature."""

    blocks: nn.ModuleList
    head: nn.Module
    use_mask: bool
    in_channels: int

    def forward(
        self, image: Tensor, mask: Tensor | None = None, return_features: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        if self.use_mask:
            if mask is None:
                raise ValueError(
                    f"{type(self).__name__}(use_mask=True) needs the mask as its second argument"
                )
            image = torch.cat([image, mask.to(image.dtype)], dim=1)
        if image.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_channels} input channels, got {image.shape[1]}"
            )
        features = []
        h = image
        for block in self.blocks:
            h = block(h)
            features.append(h)
        logits = self.head(h)
        return (logits, features) if return_features else logits


class PatchGAN(_FeatureDiscriminator):
    """pix2pix PatchGAN. ``num_layers`` stride-2 layers (channels ``base * 2**i`` capped at ``8 * base``), one
    stride-1 layer, then a 1-channel 4x4 convolution."""

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 3,
        norm: str = "batch",
        use_mask: bool = False,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if num_layers < 1 or base_channels < 1:
            raise ValueError(f"num_layers and base_channels must be >= 1, got {num_layers}, {base_channels}")
        self.use_mask = use_mask
        self.in_channels = in_channels + int(use_mask)
        blocks = [nn.Sequential(nn.Conv2d(self.in_channels, base_channels, 4, 2, 1), nn.LeakyReLU(0.2))]
        cin = base_channels
        for i in range(1, num_layers + 1):
            cout = base_channels * min(2**i, 8)
            stride = 2 if i < num_layers else 1
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(cin, cout, 4, stride, 1, bias=norm == "none"),
                    _norm(norm, cout),
                    nn.LeakyReLU(0.2),
                )
            )
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, 1, 4, 1, 1)


class SNPatchGAN(_FeatureDiscriminator):
    """DeepFill v2's spectral-normalised patch discriminator (input: image + mask by default)."""

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 6,
        use_mask: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 1 or base_channels < 1:
            raise ValueError(f"num_layers and base_channels must be >= 1, got {num_layers}, {base_channels}")
        self.use_mask = use_mask
        self.in_channels = in_channels + int(use_mask)
        blocks = []
        cin = self.in_channels
        for i in range(num_layers):
            cout = base_channels * min(2**i, 4)
            blocks.append(nn.Sequential(spectral_norm(nn.Conv2d(cin, cout, 5, 2, 2)), nn.LeakyReLU(0.2)))
            cin = cout
        self.blocks = nn.ModuleList(blocks[:-1])
        # the last layer's map is the patch scores, every element one (hinge) score; the released DeepFill code
        # also passes it through LeakyReLU, here the scores stay linear
        self.head = blocks[-1][0]
