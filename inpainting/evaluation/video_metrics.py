"""Per-clip video inpainting metrics: PSNR and SSIM of the composite, and the flow warping error (flicker).

Clips are ``uint8 T x H x W x 3`` RGB (the composite: known pixels are the ground truth's), holes ``T x H x W``
(non-zero = missing). Values are scaled to [0, 1] first, as :mod:`inpainting.evaluation.metrics` does.

* :func:`hole_psnr`: PSNR (dB, data range 1) of the mean squared error over **every hole pixel of every frame**
  (three channels each): one error for the whole clip, so frames with larger holes weigh more. Capped at
  :data:`~inpainting.evaluation.metrics.MAX_PSNR`.
* :func:`clip_ssim`: the image evaluator's SSIM (:func:`~inpainting.evaluation.metrics.image_metrics`: 11 x 11
  Gaussian window, sigma 1.5, 5-pixel border dropped) of each composited frame, averaged over the frames. Known
  pixels are identical in every method's composite, so differences between methods come from the holes.
* :func:`warp_error`: the flow warping error of Lai et al. 2018 ("Learning Blind Video Temporal Consistency",
  their E_warp), with the optical flow taken from the **ground truth** (:func:`truth_flows`, OpenCV DIS), so every
  method is judged against the same motion: for each consecutive pair, output frame ``t + 1`` is warped back to
  frame ``t`` by the ground-truth flow ``t -> t + 1`` (bilinear), and the squared RGB distance (summed over the
  channels, per pixel) is averaged over the pixels that are not occluded (forward-backward check of Sundaram et
  al. 2010 / Ruder et al. 2016: ``|F + B'|^2 <= 0.01 (|F|^2 + |B'|^2) + 0.5``, and the match inside the frame) and
  lie in a hole of either frame (a hole of frame ``t``, or whose match falls in a hole of frame ``t + 1``): outside
  the holes every method shows the ground truth. The clip's error is the mean over the pairs that have such pixels.
  Lower is less flicker; the ground truth's own error is the floor (about 0 for a static scene).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from inpainting.evaluation.metrics import MAX_PSNR, image_metrics

#: ``|F + B'|^2 <= OCCLUSION_ALPHA (|F|^2 + |B'|^2) + OCCLUSION_BETA`` keeps a pixel (Ruder et al. 2016's constants)
OCCLUSION_ALPHA = 0.01
OCCLUSION_BETA = 0.5

Flow = tuple[
    np.ndarray, np.ndarray
]  # (forward t -> t+1 at frame t, backward t+1 -> t at frame t+1), H x W x 2


def _unit(frames: np.ndarray) -> np.ndarray:
    return np.asarray(frames, np.float64) / 255.0


def hole_psnr(output: np.ndarray, truth: np.ndarray, holes: np.ndarray) -> float:
    """PSNR of the MSE over all hole pixels of all frames (see the module docstring); MAX_PSNR for no error."""
    hole = np.asarray(holes) != 0
    if not hole.any():
        return MAX_PSNR
    mse = float(((_unit(output) - _unit(truth))[hole] ** 2).mean())
    return MAX_PSNR if mse == 0 else min(MAX_PSNR, 10.0 * math.log10(1.0 / mse))


def clip_ssim(output: np.ndarray, truth: np.ndarray, holes: np.ndarray) -> float:
    """The image evaluator's per-image SSIM of each frame, averaged over the frames."""

    def tensor(frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255.0)

    mask = torch.from_numpy((np.asarray(holes) != 0).astype(np.float32))[:, None]
    return float(image_metrics(tensor(output), tensor(truth), mask)["ssim"].double().mean())


def truth_flows(truth: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> list[Flow]:
    """Forward and backward DIS optical flow of each consecutive pair of ground-truth frames (computed once per clip)."""
    dis = cv2.DISOpticalFlow_create(preset)
    gray = [cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) for frame in truth]
    return [
        (dis.calc(gray[t], gray[t + 1], None), dis.calc(gray[t + 1], gray[t], None))
        for t in range(len(gray) - 1)
    ]


def _sample(
    image: np.ndarray, x: np.ndarray, y: np.ndarray, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    return cv2.remap(image, x, y, interpolation, borderMode=cv2.BORDER_REPLICATE)


def warp_error(output: np.ndarray, flows: list[Flow], holes: np.ndarray) -> float:
    """E_warp of ``output`` under the ground-truth ``flows``, over non-occluded hole pixels (module docstring).

    NaN when no pair has a non-occluded hole pixel (a one-frame clip, say).
    """
    frames = np.asarray(output, np.float32) / 255.0
    hole = (np.asarray(holes) != 0).astype(np.float32)
    height, width = hole.shape[1:]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    errors = []
    for t, (forward, backward) in enumerate(flows):
        x, y = grid_x + forward[..., 0], grid_y + forward[..., 1]
        inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        back = _sample(backward, x, y)
        mismatch = ((forward + back) ** 2).sum(-1)
        bound = OCCLUSION_ALPHA * ((forward**2).sum(-1) + (back**2).sum(-1)) + OCCLUSION_BETA
        region = inside & (mismatch <= bound)
        region &= (hole[t] > 0) | (_sample(hole[t + 1], x, y, cv2.INTER_NEAREST) > 0)
        count = int(region.sum())
        if count == 0:
            continue
        warped = _sample(frames[t + 1], x, y)
        errors.append(float(((frames[t] - warped) ** 2).sum(-1)[region].astype(np.float64).sum() / count))
    return float(np.mean(errors)) if errors else math.nan


__all__ = ["clip_ssim", "hole_psnr", "truth_flows", "warp_error"]
