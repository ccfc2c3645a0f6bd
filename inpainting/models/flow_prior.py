"""Flow-guided propagation: a video's first guess that follows the camera and the scene.

Each hole pixel follows the optical flow, frame to frame, to the nearest frame (in time) where it lands on a pixel
that frame shows, and takes that colour (bilinear sample). What no frame shows stays a hole for the caller to fill.
The flow comes from OpenCV's DIS (Kroeger et al. 2016) between consecutive frames whose holes were first filled by
the harmonic fill; inside the holes (and a ``margin`` around them, where DIS matched fill instead of content) the
flow is replaced by the harmonic fill of the flow around it. This is the propagation stage of flow-guided video
inpainters (FGVC, Gao et al. 2020; ProPainter, Zhou et al. 2023), with a classical flow completion.

``still_camera_px``: a pair of frames whose median flow over trusted pixels is below this many pixels is taken as a
still camera, and its flow is set to zero, so the propagation becomes an exact copy from the same place in the
other frame (:func:`~inpainting.models.fill_prior.nearest_visible_fill`'s rule) instead of a bilinear sample of a
noisy sub-pixel flow. 0 turns the test off (the plain method).

Two users: the classical ``flow_guided`` video baseline (:mod:`inpainting.evaluation.video_baselines`) and the
video network's ``temporal_prior="flow"`` first guess (:class:`~inpainting.models.sa_unet_video.SAUNetVideo`),
which runs it on the CPU outside the autograd graph: it is a function of the input only, as the push-pull fill is.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from inpainting.models.fill_prior import push_pull_fill

__all__ = ["DIS_PRESETS", "STILL_CAMERA_PX", "flow_fill", "flow_propagate"]

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
#: the still-camera test of the video network's flow guess and of ``flow_guided_still``: measured on 128² clips, 0.5
#: px fired on every pair of a static-camera street video and on no pair of the photos under synthetic camera motion
#: (1 px already fired on slow pans); docs/benchmarks.md "video_ablation"
STILL_CAMERA_PX = 0.5
#: Jacobi sweeps of the harmonic fill used for the flow field and for the frames the flow is computed on
HARMONIC_RELAX = 4


def _harmonic(values: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """A float ``H x W x C`` array with its ``invalid`` cells replaced by the harmonic (relaxed push-pull) fill."""
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).permute(2, 0, 1)[None]
    hole = torch.from_numpy(invalid)[None, None].double()
    filled = push_pull_fill(tensor, hole, relax=HARMONIC_RELAX)[0].permute(1, 2, 0).numpy()
    return np.where(invalid[..., None], filled, values).astype(np.float32)


def _flows(
    gray: list[np.ndarray], holes: np.ndarray, margin: int, preset: str, still_camera_px: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``forward[t]``: flow t -> t+1 at frame t's pixels; ``backward[t]``: flow t -> t-1 (``backward[0]`` unused)."""
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    zero = np.zeros((*holes.shape[1:], 2), np.float32)
    forward, backward = [], [zero]
    for t in range(len(gray) - 1):
        invalid = cv2.dilate((holes[t] | holes[t + 1]).astype(np.uint8), kernel) > 0
        pair = []
        for a, b in ((t, t + 1), (t + 1, t)):
            flow = dis.calc(gray[a], gray[b], None)
            pair.append(zero if invalid.all() else _harmonic(flow, invalid))
        if still_camera_px > 0 and not invalid.all():
            motion = np.median(np.linalg.norm(pair[0][~invalid], axis=-1))
            if motion < still_camera_px:
                pair = [zero, zero]
        forward.append(pair[0])
        backward.append(pair[1])
    return forward, backward


def flow_propagate(
    filled: np.ndarray,
    holes: np.ndarray,
    margin: int = 3,
    preset: str = "medium",
    still_camera_px: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Propagate known pixels into the holes along the flow (see the module docstring).

    ``filled``: ``T x H x W x 3`` float (0-255) frames whose holes hold a fill of known pixels only (never the
    hidden content); ``holes``: bool ``T x H x W``. Returns ``(frames, missing)``: float32 frames with every
    propagated hole pixel replaced, and the bool map of hole pixels no frame showed (left as in ``filled``).
    """
    if preset not in DIS_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(DIS_PRESETS)}, got {preset!r}")
    out = np.array(filled, dtype=np.float32)
    gray = [cv2.cvtColor(np.clip(np.rint(f), 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in out]
    forward, backward = _flows(gray, holes, margin, preset, still_camera_px)
    count, height, width = holes.shape
    known = (~holes).astype(np.float32)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    missing = holes.copy()
    # chains[t, direction] = current (x, y) positions of frame t's pixels followed that many frames on
    chains = {(t, d): (grid_x.copy(), grid_y.copy()) for t in range(count) for d in (-1, 1)}
    for step in range(1, count):
        for t in range(count):
            for direction in (-1, 1):  # the earlier frame first on a tie
                s = t + direction * step
                if not (0 <= s < count) or not missing[t].any():
                    continue
                flow = forward[s - 1] if direction == 1 else backward[s + 1]  # frame s - direction -> s
                x, y = chains[t, direction]
                dx = cv2.remap(flow[..., 0], x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                dy = cv2.remap(flow[..., 1], x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                x, y = x + dx, y + dy
                chains[t, direction] = (x, y)
                # all four bilinear neighbours known (and inside the frame): the sample is real content
                seen = cv2.remap(known[s], x, y, cv2.INTER_LINEAR, borderValue=0.0) > 0.999
                take = missing[t] & seen
                if take.any():
                    sample = cv2.remap(out[s], x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                    out[t][take] = sample[take]
                    missing[t] &= ~take
    return out, missing


@torch.no_grad()
def flow_fill(
    clip: Tensor,
    mask: Tensor,
    margin: int = 3,
    preset: str = "medium",
    still_camera_px: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """:func:`flow_propagate` on a batch of clips in [-1, 1]: the tensor twin of
    :func:`~inpainting.models.fill_prior.nearest_visible_fill`.

    ``clip``: ``B x T x C x H x W`` (holes zeroed); ``mask``: ``B x T x 1 x H x W``, 1 = missing. Returns the clip
    with every propagated hole pixel filled and the mask of what no frame shows (0 in the clip there), on the
    clip's device and dtype. Runs on the CPU in float32, one clip at a time.
    """
    if clip.dim() != 5 or mask.dim() != 5 or mask.shape[2] != 1 or clip.shape[:2] != mask.shape[:2]:
        raise ValueError(
            f"expected a B x T x C x H x W clip and a B x T x 1 x H x W mask, got {tuple(clip.shape)} and "
            f"{tuple(mask.shape)}"
        )
    frames = clip.shape[1]
    holes = mask.detach().float().cpu() > 0.5
    values = clip.detach().float().cpu()
    # the harmonic fill of each frame's holes, in 0-255: what the flow is computed on and what it samples
    prefilled = push_pull_fill(values.flatten(0, 1), holes.flatten(0, 1).float(), relax=HARMONIC_RELAX)
    prefilled = (prefilled.view_as(values) * 127.5 + 127.5).permute(0, 1, 3, 4, 2).numpy()
    outs, unseen = [], []
    for b in range(clip.shape[0]):
        hole = holes[b, :, 0].numpy()
        if frames == 1 or not hole.any():
            out, missing = prefilled[b], hole
        else:
            out, missing = flow_propagate(prefilled[b], hole, margin, preset, still_camera_px)
        outs.append(torch.from_numpy(out))
        unseen.append(torch.from_numpy(missing))
    filled = (torch.stack(outs).permute(0, 1, 4, 2, 3) - 127.5) / 127.5
    missing = torch.stack(unseen)[:, :, None].float()
    filled = torch.where(holes & (missing == 0), filled, values * (1 - missing))  # unseen: 0 as in the input
    return filled.to(clip.device, clip.dtype), missing.to(mask.device, mask.dtype)
