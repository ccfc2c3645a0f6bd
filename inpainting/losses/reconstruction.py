"""Pixel-space reconstruction losses shared by every inpainting recipe.

The hole/valid split follows Liu et al. 2018 (partial convolutions): the network is judged
separately on the pixels it had to invent and on those it was given, so the two can be weighted.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Charbonnier's epsilon (Charbonnier et al. 1994; 1e-3 as in LapSRN, Lai et al. 2017): sqrt(d² + eps²) is L1 away
#: from zero and smooth (L2-like) within about eps of it
CHARBONNIER_EPS = 1e-3
#: per-pixel distances ``loss.distance`` may name
DISTANCES = ("l1", "l2", "charbonnier")


def pixel_distance(difference: Tensor, distance: str = "l1") -> Tensor:
    """Elementwise ``|d|`` (l1), ``d²`` (l2) or ``sqrt(d² + eps²)`` (charbonnier)."""
    if distance == "l1":
        return difference.abs()
    if distance == "l2":
        return difference.square()
    if distance == "charbonnier":
        return (difference.square() + CHARBONNIER_EPS**2).sqrt()
    raise ValueError(f"loss.distance must be one of {', '.join(DISTANCES)}, got {distance!r}")


def masked_l1(prediction: Tensor, target: Tensor, weight: Tensor, distance: str = "l1") -> Tensor:
    """Mean absolute error (or another :func:`pixel_distance`) over the pixels where ``weight`` is 1, normalised by
    their count.

    Normalising by the weighted area (not the image area) keeps the loss scale independent of
    how large the hole is, so small and large holes contribute equally per pixel.
    """
    weight = weight.expand_as(prediction)
    return (weight * pixel_distance(prediction - target, distance)).sum() / weight.sum().clamp_min(1.0)


def total_variation(image: Tensor, region: Tensor | None = None) -> Tensor:
    """Mean anisotropic total variation, optionally restricted to pixel pairs touching ``region``.

    Liu et al. apply TV on the 1-pixel dilation of the hole so the seam between invented and
    given pixels is smooth; passing the mask as ``region`` does that.
    """
    dh = (image[..., 1:, :] - image[..., :-1, :]).abs()
    dw = (image[..., :, 1:] - image[..., :, :-1]).abs()
    if region is None:
        return dh.mean() + dw.mean()
    rh = torch.maximum(region[..., 1:, :], region[..., :-1, :]).expand_as(dh)
    rw = torch.maximum(region[..., :, 1:], region[..., :, :-1]).expand_as(dw)
    return (rh * dh).sum() / rh.sum().clamp_min(1.0) + (rw * dw).sum() / rw.sum().clamp_min(1.0)


class InpaintingLoss(nn.Module):
    """Weighted sum of hole L1, valid L1 and seam total variation.

    ``distance`` replaces the L1 of both pixel terms by ``"l2"`` or ``"charbonnier"`` (the terms keep their names,
    ``hole_l1`` / ``valid_l1``, so logs and sweeps compare across settings). Returns a dict of named terms plus
    ``total`` so every term can be logged on its own.
    """

    def __init__(
        self,
        hole_weight: float = 6.0,
        valid_weight: float = 1.0,
        tv_weight: float = 0.1,
        distance: str = "l1",
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"loss.distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
        self.distance = distance
        for name, value in {
            "hole_weight": hole_weight,
            "valid_weight": valid_weight,
            "tv_weight": tv_weight,
        }.items():
            if value < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {value}")
        self.hole_weight = hole_weight
        self.valid_weight = valid_weight
        self.tv_weight = tv_weight

    def forward(
        self, output: Tensor, composite: Tensor, target: Tensor, mask: Tensor, coarse: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``output`` is the raw generator output, ``composite`` the output pasted into the known pixels;
        ``coarse`` (a coarse-to-fine net's first stage) has no term here (see ``RecipeLoss.coarse_weight``)."""
        terms = {
            "hole_l1": masked_l1(output, target, mask, self.distance),
            "valid_l1": masked_l1(output, target, 1.0 - mask, self.distance),
            "tv": total_variation(composite, mask),
        }
        terms["total"] = (
            self.hole_weight * terms["hole_l1"]
            + self.valid_weight * terms["valid_l1"]
            + self.tv_weight * terms["tv"]
        )
        return terms
