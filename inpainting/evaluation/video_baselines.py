"""Classical (non-learned) video inpainting baselines behind one interface.

Every method is a callable ``method(frames, mask) -> frames``:

* ``frames``: ``uint8`` ``T x H x W x 3`` RGB;
* ``mask``: ``uint8`` (or bool) ``T x H x W``, non-zero = missing;
* returns ``uint8`` ``T x H x W x 3`` in which every known pixel is bit-identical to ``frames``.

No method reads a hidden pixel: each first replaces the holes with a per-frame fill computed from known pixels
only and works on that from then on, so scrambling what lies under the mask cannot change the result.

* ``PerFrame``: any image baseline (:mod:`inpainting.evaluation.baselines`) frame by frame; no time at all.
* ``TemporalCopy``: each hole pixel from the nearest frame in time where the same pixel is visible (exact for a
  static camera), the rest by the harmonic fill.
* ``FlowGuided``: optical flow between consecutive frames (OpenCV DIS) on the hole-filled frames, the flow inside
  the holes (and where its match lies in the next frame's hole) replaced by a harmonic fill of the flow field, then
  each hole pixel follows the flow chain forward and backward to the nearest frame where it lands on known pixels
  (bilinear sample); the rest by the harmonic fill. Handles camera motion that ``TemporalCopy`` cannot.

:func:`get_video_baseline` builds one by name (:data:`VIDEO_BASELINES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from inpainting.errors import ConfigError
from inpainting.evaluation.baselines import Inpainter, get_baseline, harmonic
from inpainting.models.fill_prior import push_pull_fill

VideoInpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _check_video(frames: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate the shared contract and return ``(contiguous frames, bool T x H x W hole map)``."""
    frames, mask = np.asarray(frames), np.asarray(mask)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be a uint8 T x H x W x 3 array, got shape {frames.shape} and dtype {frames.dtype}"
        )
    if mask.ndim == 4 and mask.shape[3] == 1:
        mask = mask[..., 0]
    if mask.shape != frames.shape[:3]:
        raise ValueError(
            f"mask must be T x H x W = {frames.shape[:3]} like the frames, got shape {mask.shape}"
        )
    if mask.dtype != np.bool_ and mask.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 (non-zero = missing) or bool, got dtype {mask.dtype}")
    return np.ascontiguousarray(frames), mask != 0


def _paste_known(frames: np.ndarray, holes: np.ndarray, filled: np.ndarray) -> np.ndarray:
    return np.where(holes[..., None], filled, frames).astype(np.uint8)


def _per_frame(method: Inpainter, frames: np.ndarray, holes: np.ndarray) -> np.ndarray:
    return np.stack([method(frame, hole.astype(np.uint8)) for frame, hole in zip(frames, holes, strict=True)])


def _harmonic_field(field: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """A float ``H x W x C`` field with its ``invalid`` cells replaced by the harmonic (relaxed push-pull) fill."""
    values = torch.from_numpy(np.ascontiguousarray(field, dtype=np.float64)).permute(2, 0, 1)[None]
    hole = torch.from_numpy(invalid)[None, None].double()
    filled = push_pull_fill(values, hole, relax=4)[0].permute(1, 2, 0).numpy()
    return np.where(invalid[..., None], filled, field).astype(np.float32)


@dataclass(frozen=True)
class PerFrame:
    """An image baseline (a name of :data:`~inpainting.evaluation.baselines.BASELINES` or an inpainter) per frame."""

    method: Inpainter | str = "telea"

    def _inpainter(self) -> Inpainter:
        return get_baseline(self.method) if isinstance(self.method, str) else self.method

    def __call__(self, frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
        frames, holes = _check_video(frames, mask)
        if not holes.any():
            return frames.copy()
        return _paste_known(frames, holes, _per_frame(self._inpainter(), frames, holes))


@dataclass(frozen=True)
class TemporalCopy:
    """Each hole pixel from the nearest frame in time that shows the same pixel (earlier frame on a tie);
    what no frame shows gets the per-frame harmonic fill. Exact for a static camera and a static scene."""

    def __call__(self, frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
        frames, holes = _check_video(frames, mask)
        if not holes.any():
            return frames.copy()
        out, missing = frames.copy(), holes.copy()
        count = len(frames)
        for step in range(1, count):
            for t in range(count):
                for s in (t - step, t + step):
                    if 0 <= s < count:
                        take = missing[t] & ~holes[s]
                        out[t][take] = frames[s][take]
                        missing[t] &= ~take
        if missing.any():
            out = _per_frame(harmonic(), out, missing)
        return _paste_known(frames, holes, out)


@dataclass(frozen=True)
class FlowGuided:
    """Flow-guided propagation (see the module docstring).

    ``margin``: pixels around the holes whose flow is also replaced by the flow fill (the flow there was matched
    against filled, not real, content). ``preset``: the DIS preset (``"ultrafast"``, ``"fast"``, ``"medium"``).
    """

    margin: int = 3
    preset: str = "medium"

    def __post_init__(self) -> None:
        if self.preset not in DIS_PRESETS:
            raise ConfigError(
                f"FlowGuided: preset must be one of {', '.join(DIS_PRESETS)}, got {self.preset!r}"
            )
        if int(self.margin) != self.margin or self.margin < 0:
            raise ConfigError(f"FlowGuided: margin must be an int >= 0, got {self.margin!r}")

    def __call__(self, frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
        frames, holes = _check_video(frames, mask)
        if not holes.any():
            return frames.copy()
        # From here on only ``filled`` is read: hidden pixels replaced by a fill of the known ones.
        filled = _per_frame(harmonic(), frames, holes)
        forward, backward = self._flows(filled, holes)
        out = filled.astype(np.float32)
        count, height, width = holes.shape
        known = (~holes).astype(np.float32)
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        missing = holes.copy()
        # chains[t][direction] = current (x, y) positions of frame t's pixels followed that many frames on
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
        out_u8 = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        if missing.any():  # seen in no frame: the harmonic fill from known and propagated pixels
            out_u8 = _per_frame(harmonic(), out_u8, missing)
        return _paste_known(frames, holes, out_u8)

    def _flows(self, filled: np.ndarray, holes: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``forward[t]``: flow t -> t+1 at frame t's pixels; ``backward[t]``: flow t -> t-1 (``backward[0]`` unused).

        Flow is unreliable where either frame of the pair shows fill instead of content; there it is replaced by the
        harmonic fill of the flow around it (zero motion if nothing is reliable).
        """
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.preset])
        gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in filled]
        kernel = np.ones((2 * self.margin + 1, 2 * self.margin + 1), np.uint8)
        zero = np.zeros((*holes.shape[1:], 2), np.float32)
        forward, backward = [], [zero]
        for t in range(len(filled) - 1):
            invalid = cv2.dilate((holes[t] | holes[t + 1]).astype(np.uint8), kernel) > 0
            pair = []
            for a, b in ((t, t + 1), (t + 1, t)):
                flow = dis.calc(gray[a], gray[b], None)
                pair.append(zero if invalid.all() else _harmonic_field(flow, invalid))
            forward.append(pair[0])
            backward.append(pair[1])
        return forward, backward


def per_frame(method: str = "telea", **kwargs: object) -> PerFrame:
    """The image baseline ``method`` (keyword arguments to its factory) on every frame."""
    return PerFrame(get_baseline(method, **kwargs))


def temporal_copy() -> TemporalCopy:
    """Nearest-in-time copy of each hidden pixel (static cameras), harmonic fill for the rest."""
    return TemporalCopy()


def flow_guided(margin: int = 3, preset: str = "medium") -> FlowGuided:
    """Optical-flow-guided propagation, harmonic fill for the rest."""
    return FlowGuided(margin, preset)


#: Video method factories by plain name; call one (or :func:`get_video_baseline`) to get a ``(frames, mask)`` method.
VIDEO_BASELINES: dict[str, Callable[..., VideoInpainter]] = {
    **{
        name: (lambda name=name, **kwargs: per_frame(name, **kwargs))
        for name in ("telea", "navier_stokes", "harmonic", "biharmonic")
    },
    "temporal_copy": temporal_copy,
    "flow_guided": flow_guided,
}


def get_video_baseline(name: str, **kwargs: object) -> VideoInpainter:
    """Build the video method ``name`` (keyword arguments go to its factory)."""
    if name not in VIDEO_BASELINES:
        raise ConfigError(f"unknown video baseline {name!r}; valid names: {', '.join(VIDEO_BASELINES)}")
    return VIDEO_BASELINES[name](**kwargs)
