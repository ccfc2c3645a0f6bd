"""The one generator step both LightningModules share: run the net, form the composite, score the reconstruction.

A coarse-to-fine network (one with ``forward_stages``, e.g. ``GatedCANet``) returns its coarse stage here as a
value, and every reconstruction loss takes ``coarse=`` (ignored by losses without a coarse term): no state is
stashed on the network and no flag is read off the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class GeneratorOutput:
    """``output``: the raw network output; ``composite``: output in the hole, input elsewhere; ``coarse``: the first
    stage's output of a coarse-to-fine network, else None."""

    output: Tensor
    composite: Tensor
    coarse: Tensor | None = None


def generate(net: nn.Module, image: Tensor, mask: Tensor) -> GeneratorOutput:
    """Run ``net`` on ``image * (1 - mask)`` (mask: 1 = missing) as the batch contract says."""
    masked = image * (1.0 - mask)
    coarse = None
    if hasattr(net, "forward_stages"):
        coarse, output = net.forward_stages(masked, mask)
    else:
        output = net(masked, mask)
    return GeneratorOutput(output, output * mask + image * (1.0 - mask), coarse)


def frames_as_images(tensor: Tensor | None) -> Tensor | None:
    """A video batch's ``B x T x C x H x W`` as ``B*T x C x H x W`` (images pass through), so every image loss
    and metric serves clips unchanged: the video contract is the image contract with a frame axis."""
    return tensor.flatten(0, 1) if tensor is not None and tensor.dim() == 5 else tensor


def reconstruction_terms(
    loss: nn.Module, step: GeneratorOutput, image: Tensor, mask: Tensor
) -> dict[str, Tensor]:
    """The loss's named terms (``total`` included) for one generator step (of images or of clips)."""
    output, composite, image, mask, coarse = map(
        frames_as_images, (step.output, step.composite, image, mask, step.coarse)
    )
    return loss(output, composite, image, mask, coarse=coarse)
