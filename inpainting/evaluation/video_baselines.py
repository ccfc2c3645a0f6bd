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
  ``flow_guided_still``: the same with a still-camera test (a frame pair whose median flow is under half a pixel is
  copied as by ``TemporalCopy``): the first guess of the ``temporal_prior=flow`` video network.

:func:`get_video_baseline` builds one by name (:data:`VIDEO_BASELINES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from inpainting.errors import ConfigError
from inpainting.evaluation.baselines import Inpainter, get_baseline, harmonic
from inpainting.models.flow_prior import DIS_PRESETS, STILL_CAMERA_PX, flow_propagate

VideoInpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]


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
    ``still_camera_px``: a frame pair whose median flow is below it is copied as a still camera (0: off; see
    :mod:`inpainting.models.flow_prior`).
    """

    margin: int = 3
    preset: str = "medium"
    still_camera_px: float = 0.0

    def __post_init__(self) -> None:
        if self.preset not in DIS_PRESETS:
            raise ConfigError(
                f"FlowGuided: preset must be one of {', '.join(DIS_PRESETS)}, got {self.preset!r}"
            )
        if int(self.margin) != self.margin or self.margin < 0:
            raise ConfigError(f"FlowGuided: margin must be an int >= 0, got {self.margin!r}")
        if not self.still_camera_px >= 0:
            raise ConfigError(
                f"FlowGuided: still_camera_px must be a number >= 0 (0: off), got {self.still_camera_px!r}"
            )

    def __call__(self, frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
        frames, holes = _check_video(frames, mask)
        if not holes.any():
            return frames.copy()
        # From here on only ``filled`` is read: hidden pixels replaced by a fill of the known ones.
        filled = _per_frame(harmonic(), frames, holes)
        out, missing = flow_propagate(
            filled.astype(np.float32), holes, self.margin, self.preset, self.still_camera_px
        )
        out_u8 = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        if missing.any():  # seen in no frame: the harmonic fill from known and propagated pixels
            out_u8 = _per_frame(harmonic(), out_u8, missing)
        return _paste_known(frames, holes, out_u8)


def per_frame(method: str = "telea", **kwargs: object) -> PerFrame:
    """The image baseline ``method`` (keyword arguments to its factory) on every frame."""
    return PerFrame(get_baseline(method, **kwargs))


def temporal_copy() -> TemporalCopy:
    """Nearest-in-time copy of each hidden pixel (static cameras), harmonic fill for the rest."""
    return TemporalCopy()


def flow_guided(margin: int = 3, preset: str = "medium", still_camera_px: float = 0.0) -> FlowGuided:
    """Optical-flow-guided propagation, harmonic fill for the rest."""
    return FlowGuided(margin, preset, still_camera_px)


def flow_guided_still(margin: int = 3, preset: str = "medium") -> FlowGuided:
    """Flow-guided propagation with the still-camera test: a frame pair moving less than
    :data:`~inpainting.models.flow_prior.STILL_CAMERA_PX` is copied as ``temporal_copy`` does. The first guess of
    the ``temporal_prior=flow`` video network, so the network can be compared with where it starts."""
    return FlowGuided(margin, preset, STILL_CAMERA_PX)


#: Video method factories by plain name; call one (or :func:`get_video_baseline`) to get a ``(frames, mask)`` method.
VIDEO_BASELINES: dict[str, Callable[..., VideoInpainter]] = {
    **{
        name: (lambda name=name, **kwargs: per_frame(name, **kwargs))
        for name in ("telea", "navier_stokes", "harmonic", "biharmonic")
    },
    "temporal_copy": temporal_copy,
    "flow_guided": flow_guided,
    "flow_guided_still": flow_guided_still,
}


def get_video_baseline(name: str, **kwargs: object) -> VideoInpainter:
    """Build the video method ``name`` (keyword arguments go to its factory)."""
    if name not in VIDEO_BASELINES:
        raise ConfigError(f"unknown video baseline {name!r}; valid names: {', '.join(VIDEO_BASELINES)}")
    return VIDEO_BASELINES[name](**kwargs)
