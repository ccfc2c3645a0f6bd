"""A composite reconstruction loss with the terms the published recipes combine.

``RecipeLoss`` extends :class:`~inpainting.losses.reconstruction.InpaintingLoss` (hole L1, valid L1, seam TV) with
VGG16 perceptual and style terms and an optional L1 on a coarse first stage (DeepFill's two-stage "ae loss"), keeping
its call contract ``forward(output, composite, target, mask) -> {term: tensor, ..., "total": tensor}``. Adversarial
terms are not here: they need the discriminator and live in :class:`inpainting.training.gan_module.GANInpaintingModule`.

Recipes (conf/loss/*.yaml):

* ``pconv`` -- Liu et al. 2018: valid 1, hole 6, perceptual 0.05, style 120, TV 0.1; perceptual and style on
  pool1..pool3, each computed for the output *and* the composite.
* ``deepfill`` -- Yu et al. 2019: L1 on the coarse and the refined output (hole and valid alike), no VGG terms.
* ``lama`` -- Suvorov et al. 2022: L1 on known pixels only (weight 10, holes 0) and a perceptual term of weight 30.
  LaMa's is a "high receptive field" perceptual loss on a dilated ResNet-50 segmentation network (MSE on its
  features); that network's weights are not available offline, so ours is MSE on VGG16 features up to relu5_3.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from inpainting.losses.perceptual import VGGFeatureLoss
from inpainting.losses.reconstruction import InpaintingLoss, masked_l1

__all__ = ["FEATURE_INPUTS", "RecipeLoss"]

FEATURE_INPUTS = ("output", "composite")


class RecipeLoss(InpaintingLoss):
    """Hole/valid L1 + TV (the parent's terms) + perceptual + style (+ coarse-stage L1).

    Args:
        hole_weight, valid_weight, tv_weight, distance: as :class:`InpaintingLoss`.
        perceptual_weight, style_weight: weights of the VGG16 terms; the VGG is only built when one is > 0.
        coarse_weight: weight of ``hole_weight * hole L1 + valid_weight * valid L1`` on the coarse stage's output,
            when the caller passes ``coarse=`` (networks with ``forward_stages``, e.g. ``GatedCANet``).
        feature_inputs: which images the VGG terms judge against the target: ``["output", "composite"]`` (Liu et
            al.) or a subset (LaMa: the output).
        vgg_weights, perceptual_layers, style_layers, perceptual_distance, feature_scale: see
            :class:`~inpainting.losses.perceptual.VGGFeatureLoss` (``vgg_weights=null``: random VGG, tests only).
    """

    def __init__(
        self,
        hole_weight: float = 6.0,
        valid_weight: float = 1.0,
        tv_weight: float = 0.1,
        perceptual_weight: float = 0.0,
        style_weight: float = 0.0,
        coarse_weight: float = 0.0,
        feature_inputs: Sequence[str] = FEATURE_INPUTS,
        vgg_weights: str | os.PathLike | None = "default",
        perceptual_layers: Sequence[str] = ("pool1", "pool2", "pool3"),
        style_layers: Sequence[str] = ("pool1", "pool2", "pool3"),
        perceptual_distance: str = "l1",
        feature_scale: str | float | Mapping[str, float] = "auto",
        distance: str = "l1",
    ) -> None:
        super().__init__(
            hole_weight=hole_weight, valid_weight=valid_weight, tv_weight=tv_weight, distance=distance
        )
        for name, value in {
            "perceptual_weight": perceptual_weight,
            "style_weight": style_weight,
            "coarse_weight": coarse_weight,
        }.items():
            if value < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {value}")
        feature_inputs = tuple(feature_inputs)
        bad = [name for name in feature_inputs if name not in FEATURE_INPUTS]
        if bad or not feature_inputs:
            raise ValueError(
                f"feature_inputs must be a non-empty subset of {FEATURE_INPUTS}, got {feature_inputs}"
            )
        self.perceptual_weight = perceptual_weight
        self.style_weight = style_weight
        self.coarse_weight = coarse_weight
        self.feature_inputs = feature_inputs
        self.vgg_loss: VGGFeatureLoss | None = None
        if perceptual_weight > 0 or style_weight > 0:
            self.vgg_loss = VGGFeatureLoss(
                perceptual_layers=perceptual_layers if perceptual_weight > 0 else (),
                style_layers=style_layers if style_weight > 0 else (),
                weights=vgg_weights,
                distance=perceptual_distance,
                feature_scale=feature_scale,
            )

    def forward(
        self, output: Tensor, composite: Tensor, target: Tensor, mask: Tensor, coarse: Tensor | None = None
    ) -> dict[str, Tensor]:
        """As :meth:`InpaintingLoss.forward`; ``coarse`` is the first stage's raw output, if the network has one."""
        terms = super().forward(output, composite, target, mask)
        total = terms.pop("total")
        if self.vgg_loss is not None:
            with_grad = {"output": output, "composite": composite}
            with torch.no_grad():
                target_features = self.vgg_loss.features(target)
            perceptual = style = output.new_zeros(())
            for name in self.feature_inputs:
                d = self.vgg_loss.distances(self.vgg_loss.features(with_grad[name]), target_features)
                perceptual = perceptual + d["perceptual"]
                style = style + d["style"]
            if self.perceptual_weight > 0:
                terms["perceptual"] = perceptual
                total = total + self.perceptual_weight * perceptual
            if self.style_weight > 0:
                terms["style"] = style
                total = total + self.style_weight * style
        if coarse is not None and self.coarse_weight > 0:
            terms["coarse_hole_l1"] = masked_l1(coarse, target, mask, self.distance)
            terms["coarse_valid_l1"] = masked_l1(coarse, target, 1.0 - mask, self.distance)
            total = total + self.coarse_weight * (
                self.hole_weight * terms["coarse_hole_l1"] + self.valid_weight * terms["coarse_valid_l1"]
            )
        terms["total"] = total
        return terms
