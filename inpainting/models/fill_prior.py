"""Push-pull fill: a parameter-free, smooth first guess for the hole that a network then refines.

Push-pull (Gortler et al. 1996, "The Lumigraph", section 3.2) builds a pyramid of mask-weighted averages
("push": each coarser level averages the known pixels below it) and then fills every level from the next
coarser one where it has no data ("pull"). The result equals the input on known pixels and is a smooth,
colour-correct membrane across each hole, at the cost of a few poolings (linear in pixels).

Why a network wants it: a U-Net that must learn to carry colour across a 60 px hole through its receptive
field spends its first thousands of steps producing flat grey (measured: 800 CPU steps of sa_unet lost 3-5 dB to
OpenCV Telea, see docs/benchmarks.md). Given this fill as its input and its starting output, the network starts
at a classical inpainter's quality and only has to learn the correction (edges, texture), the same idea as the
coarse stage of coarse-to-fine inpainters (DeepFill), with the coarse stage made free.

Relaxation (``relax`` > 0): the plain pull is a blurred membrane, not a harmonic one, so it bends a linear colour
ramp across a large hole (measured on a 900x600 gradient with a 150x75 px ellipse: 6.8/255 mean error in the hole).
A few Jacobi sweeps of Laplace's equation at every level of the pull (each hole pixel becomes the mean of its 3x3
neighbourhood; known pixels stay) turn it into a cascadic multigrid solve: the coarse level is the starting guess,
so a handful of sweeps per level converges to the harmonic fill, which is exact on linear ramps (4 sweeps: 1.7/255
on the same case; OpenCV Telea 3.7/255).

The depth is fixed (``levels``) rather than computed from the image size so the traced graph (TorchScript,
ONNX with dynamic height/width) is the same for every size; holes wider than ``2**levels`` pixels fall back to
the mean colour of the image's known pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["nearest_visible_fill", "push_pull_fill"]

_EPS = 1e-6


def push_pull_fill(image: Tensor, mask: Tensor, levels: int = 10, relax: int = 0) -> Tensor:
    """Fill the holes of ``image`` (``B x C x H x W``) where ``mask`` (``B x 1 x H x W``) is 1 = missing.

    Known pixels come back unchanged (up to float rounding). Fully missing images become 0. ``relax``: Jacobi
    sweeps per pyramid level towards the harmonic fill (see the module docstring; 0 = plain push-pull).
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if relax < 0:
        raise ValueError(f"relax must be >= 0, got {relax}")
    if mask.shape[1] != 1 or mask.shape[-2:] != image.shape[-2:] or mask.shape[0] != image.shape[0]:
        raise ValueError(
            f"mask must be B x 1 x H x W matching image {tuple(image.shape)}, got {tuple(mask.shape)}"
        )
    valid = 1.0 - mask.to(image.dtype)
    weighted, weight = image * valid, valid
    pyramid = [(weighted, weight)]
    for _ in range(levels):  # push: mask-weighted averages, level by level
        weighted = F.avg_pool2d(weighted, 2, ceil_mode=True)
        weight = F.avg_pool2d(weight, 2, ceil_mode=True)
        pyramid.append((weighted, weight))
    # the coarsest level: its own average where it has data, the image's mean known colour elsewhere
    total = weighted.sum(dim=(2, 3), keepdim=True)
    total_weight = weight.sum(dim=(2, 3), keepdim=True)
    filled = _blend(weighted, weight, total / total_weight.clamp_min(_EPS))
    for weighted, weight in reversed(pyramid[:-1]):  # pull: fill each level from the one above
        coarse = F.interpolate(filled, size=weighted.shape[-2:], mode="bilinear", align_corners=False)
        filled = _blend(weighted, weight, coarse)
        for _ in range(relax):  # Jacobi sweeps: a hole pixel becomes the mean of its neighbourhood
            neighbours = F.avg_pool2d(filled, 3, stride=1, padding=1, count_include_pad=False)
            filled = _blend(weighted, weight, neighbours)
    return filled


def _blend(weighted: Tensor, weight: Tensor, fallback: Tensor) -> Tensor:
    """Own average where the level has data, ``fallback`` where not, mixed by the known fraction in between."""
    own = weighted / weight.clamp_min(_EPS)
    alpha = weight.clamp(0.0, 1.0)
    return alpha * own + (1.0 - alpha) * fallback


def nearest_visible_fill(clip: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Each hole pixel of a ``B x T x C x H x W`` clip from the nearest frame in time where it is visible.

    ``mask``: ``B x T x 1 x H x W``, 1 = missing. Returns the filled clip and the mask of what no frame shows
    (still 0 in the clip). The rule of the classical ``temporal_copy`` (earlier frame on a tie): exact for a static
    camera and scene, the first stage of flow-guided video inpainters without the flow (FGVC, Gao et al. 2020;
    ProPainter, Zhou et al. 2023, propagate along flow before a transformer refines). Elementwise ops in a loop over
    the (static) T, so it traces and exports as the rest of the net.
    """
    if clip.dim() != 5 or mask.dim() != 5 or mask.shape[2] != 1 or clip.shape[:2] != mask.shape[:2]:
        raise ValueError(
            f"expected a B x T x C x H x W clip and a B x T x 1 x H x W mask, got {tuple(clip.shape)} and "
            f"{tuple(mask.shape)}"
        )
    frames = clip.shape[1]
    valid = 1.0 - mask.to(clip.dtype)
    filled, seen = [], []
    for t in range(frames):
        out, have = clip[:, t] * valid[:, t], valid[:, t]
        for step in range(1, frames):
            for s in (t - step, t + step):
                if 0 <= s < frames:
                    take = (1.0 - have) * valid[:, s]
                    out = out + take * clip[:, s]
                    have = have + take
        filled.append(out)
        seen.append(have)
    return torch.stack(filled, 1), 1.0 - torch.stack(seen, 1)
