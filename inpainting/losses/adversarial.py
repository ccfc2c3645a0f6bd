"""Adversarial losses for inpainting GANs: hinge, non-saturating + R1, feature matching.

* Hinge (Lim & Ye 2017; used by SN-GAN and DeepFill v2's SN-PatchGAN):
  ``L_D = E[relu(1 - D(real))] + E[relu(1 + D(fake))]``, ``L_G = -E[D(fake)]``.
* Non-saturating (Goodfellow et al. 2014): ``L_D = E[softplus(-D(real))] + E[softplus(D(fake))]``,
  ``L_G = E[softplus(-D(fake))]``; with the R1 penalty (Mescheder et al. 2018) on real images,
  ``R1 = E[||grad_x D(x_real)||^2]``, added to ``L_D`` times ``r1_weight`` (LaMa's ``gp_coef``, 0.001; LaMa's
  convention has no 1/2 factor, we follow it).
* Feature matching (Wang et al. 2018, pix2pixHD): L1 between the discriminator's intermediate features of the
  real and the fake image, averaged over layers (LaMa uses the squared error; pix2pixHD L1).
* ``mask_as_fake_target`` (LaMa): the fake image's known-region patches are labelled *real* for the discriminator,
  only hole patches are fake, so D learns to find the hole rather than any difference. The mask is resized to the
  logit map by adaptive average pooling (a patch's target is its hole fraction; LaMa resizes by nearest neighbour).

Every patch logit counts as one sample (PatchGAN/SN-PatchGAN output maps).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "KINDS",
    "AdversarialLoss",
    "feature_matching_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "nonsaturating_discriminator_loss",
    "nonsaturating_generator_loss",
    "r1_penalty",
]

KINDS = ("hinge", "nonsaturating")


def _real_loss(logits: Tensor, kind: str) -> Tensor:
    """D loss on real logits: ``E[relu(1 - D)]`` (hinge) or ``E[softplus(-D)]`` (non-saturating)."""
    return (F.relu(1.0 - logits) if kind == "hinge" else F.softplus(-logits)).mean()


def _fake_loss(logits: Tensor, kind: str, target_real: Tensor | None) -> Tensor:
    """Per-logit D loss on fake logits: ``fake`` target everywhere, or per-patch ``target_real`` weights."""
    as_fake = F.relu(1.0 + logits) if kind == "hinge" else F.softplus(logits)
    if target_real is None:
        return as_fake.mean()
    as_real = F.relu(1.0 - logits) if kind == "hinge" else F.softplus(-logits)
    return ((1.0 - target_real) * as_fake + target_real * as_real).mean()


def hinge_discriminator_loss(
    real_logits: Tensor, fake_logits: Tensor, fake_hole: Tensor | None = None
) -> Tensor:
    """``E[relu(1 - D(real))] + E[relu(1 + D(fake))]``; ``fake_hole`` (logit-sized): see ``mask_as_fake_target``."""
    target_real = None if fake_hole is None else 1.0 - fake_hole
    return _real_loss(real_logits, "hinge") + _fake_loss(fake_logits, "hinge", target_real)


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """``-E[D(fake)]``."""
    return -fake_logits.mean()


def nonsaturating_discriminator_loss(
    real_logits: Tensor, fake_logits: Tensor, fake_hole: Tensor | None = None
) -> Tensor:
    """``E[softplus(-D(real))] + E[softplus(D(fake))]`` (binary cross-entropy on logits)."""
    target_real = None if fake_hole is None else 1.0 - fake_hole
    return _real_loss(real_logits, "nonsaturating") + _fake_loss(fake_logits, "nonsaturating", target_real)


def nonsaturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """``E[softplus(-D(fake))]``: the non-saturating generator loss."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: Tensor, real_images: Tensor) -> Tensor:
    """``mean over the batch of ||d sum(D(x)) / dx||^2`` (Mescheder et al. 2018); ``real_images`` must require grad.

    Built with ``create_graph=True`` so the penalty itself is differentiable w.r.t. the discriminator.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True, allow_unused=True)
    if grad is None:  # D ignores its input (a constant discriminator): no gradient, no penalty
        return real_logits.new_zeros(())
    return grad.pow(2).reshape(grad.shape[0], -1).sum(dim=1).mean()


def feature_matching_loss(fake_features: Sequence[Tensor], real_features: Sequence[Tensor]) -> Tensor:
    """Mean over layers of the L1 distance between fake and (detached) real discriminator features."""
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError(
            f"feature lists must be non-empty and of equal length, got {len(fake_features)} and {len(real_features)}"
        )
    return torch.stack(
        [F.l1_loss(f, r.detach()) for f, r in zip(fake_features, real_features, strict=True)]
    ).mean()


def _logit_hole(mask: Tensor, logits: Tensor) -> Tensor:
    """Hole fraction of each logit's patch: the mask average-pooled to the logit map's size."""
    return F.adaptive_avg_pool2d(mask.to(logits.dtype), logits.shape[-2:])


class AdversarialLoss(nn.Module):
    """The discriminator's and the generator's adversarial terms, weighted.

    Args:
        kind: ``"hinge"`` or ``"nonsaturating"``.
        weight: weight of the generator's adversarial term (LaMa: 10; DeepFill v2: 1).
        r1_weight: R1 penalty weight in the discriminator loss (LaMa: 0.001); 0 = off.
        feature_matching_weight: weight of the generator's feature-matching term (LaMa: 100); 0 = off.
        mask_as_fake_target: label known-region patches of the fake as real (LaMa); see the module docstring.

    The discriminator is called as ``discriminator(image, mask, return_features=...)``; it ignores the mask
    unless it was built with ``use_mask``.
    """

    def __init__(
        self,
        kind: str = "hinge",
        weight: float = 1.0,
        r1_weight: float = 0.0,
        feature_matching_weight: float = 0.0,
        mask_as_fake_target: bool = False,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"adversarial kind must be one of {KINDS}, got {kind!r}")
        for name, value in {
            "weight": weight,
            "r1_weight": r1_weight,
            "feature_matching_weight": feature_matching_weight,
        }.items():
            if value < 0:
                raise ValueError(f"adversarial.{name} must be >= 0, got {value}")
        self.kind = kind
        self.weight = weight
        self.r1_weight = r1_weight
        self.feature_matching_weight = feature_matching_weight
        self.mask_as_fake_target = mask_as_fake_target

    def discriminator_terms(
        self, discriminator: nn.Module, real: Tensor, fake: Tensor, mask: Tensor
    ) -> dict[str, Tensor]:
        """``{"d_real", "d_fake", "r1", "total"}`` for one discriminator update; ``fake`` should be detached."""
        if self.r1_weight > 0:
            real = real.detach().requires_grad_(True)
        real_logits = discriminator(real, mask)
        fake_logits = discriminator(fake, mask)
        fake_hole = _logit_hole(mask, fake_logits) if self.mask_as_fake_target else None
        target_real = None if fake_hole is None else 1.0 - fake_hole
        d_real = _real_loss(real_logits, self.kind)
        d_fake = _fake_loss(fake_logits, self.kind, target_real)
        terms = {"d_real": d_real, "d_fake": d_fake}
        total = d_real + d_fake
        if self.r1_weight > 0:
            terms["r1"] = r1_penalty(real_logits, real)
            total = total + self.r1_weight * terms["r1"]
        terms["real_logit"] = real_logits.detach().mean()
        terms["fake_logit"] = fake_logits.detach().mean()
        terms["total"] = total
        return terms

    def generator_terms(
        self, discriminator: nn.Module, real: Tensor, fake: Tensor, mask: Tensor
    ) -> dict[str, Tensor]:
        """``{"adversarial", ["feature_matching"], "total"}`` (``total`` weighted) for the generator update."""
        if self.feature_matching_weight > 0:
            fake_logits, fake_features = discriminator(fake, mask, return_features=True)
            with torch.no_grad():
                _, real_features = discriminator(real, mask, return_features=True)
        else:
            fake_logits = discriminator(fake, mask)
        if self.kind == "hinge":
            adversarial = hinge_generator_loss(fake_logits)
        else:
            adversarial = nonsaturating_generator_loss(fake_logits)
        terms = {"adversarial": adversarial}
        total = self.weight * adversarial
        if self.feature_matching_weight > 0:
            terms["feature_matching"] = feature_matching_loss(fake_features, real_features)
            total = total + self.feature_matching_weight * terms["feature_matching"]
        terms["total"] = total
        return terms
