"""Video mask generators: callables ``gen(rng, frames, height, width) -> uint8 (frames, height, width)``, 1 = missing.

They are built on the image generators of :mod:`inpainting.data.masks` (``gen(rng, height, width)``), which draw
the *shape*; the video generator decides how that shape lives through the clip:

* :class:`MovingMask` (``conf/mask/video_object.yaml``): the shape moves along a smooth random path (a random
  velocity changed by a small random acceleration each frame) and deforms slowly (a small scale and rotation
  drift about its centre), like an object or person to remove. Frame 0 is the image generator's mask itself.
  ``boundary="bounce"`` keeps the shape's bounding box inside the frame (the velocity reflects off the edges);
  ``"wrap"`` lets holes leave one side and enter at the other (any shape, even one spread over the whole frame,
  keeps moving).
* :class:`StaticMask` (``video_static.yaml``): the same mask on every frame, like a logo, a timestamp or a scratch
  on the lens.
* :class:`MixedVideoMask` (``video_mixed.yaml``): one of several video generators per clip.
* :class:`AreaFilteredVideoMask`: redraws until the mean hole fraction over the frames lies in a range (the
  video evaluation buckets of :mod:`inpainting.evaluation.video_mask_sets`).

As for image masks, all randomness comes from ``rng``, so ``default_rng((seed, index))`` gives the same clip mask in
every run, and constructor arguments are primitives or other generators, so Hydra builds them from yaml.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import cv2
import numpy as np

from inpainting.data.masks import MaskGenerator, MixedMask

VideoMaskGenerator = Callable[[np.random.Generator, int, int, int], np.ndarray]

BOUNDARIES = ("bounce", "wrap")


def _check_frames(frames: int, height: int, width: int) -> None:
    for name, value in (("frames", frames), ("height", height), ("width", width)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_nonnegative(name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _image_mask(generator: MaskGenerator, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    mask = np.asarray(generator(rng, height, width))
    if mask.shape != (height, width):
        raise ValueError(
            f"the image mask generator {generator!r} returned shape {mask.shape} for {height}x{width}; it must be "
            "an image generator gen(rng, height, width) -> (height, width) (conf/mask/*.yaml without video_)"
        )
    return (mask > 0).astype(np.uint8)


class StaticMask:
    """The image generator's mask, repeated on every frame (a logo or a lens scratch does not move)."""

    def __init__(self, generator: MaskGenerator) -> None:
        if not callable(generator):
            raise ValueError(f"StaticMask: generator is not callable: {generator!r}")
        self.generator = generator

    def __call__(self, rng: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
        _check_frames(frames, height, width)
        mask = _image_mask(self.generator, rng, height, width)
        return np.ascontiguousarray(np.broadcast_to(mask, (int(frames), height, width)))


class MovingMask:
    """An image generator's mask moving and deforming smoothly through the clip (see the module docstring).

    Speeds are fractions of ``min(height, width)`` per frame, so one config moves masks alike at any size.

    Args:
        generator: image mask generator that draws the shape (frame 0).
        min_speed, max_speed: initial speed, uniform in this range, in a uniform direction.
        acceleration: standard deviation of the per-frame change of the velocity (smooth, not jittery).
        max_rotation: per-frame rotation of the shape about its centre, uniform in ``+- max_rotation`` degrees,
            drawn once per clip (a steady turn).
        max_scale_change: per-frame relative size change, uniform in ``+- max_scale_change``, drawn once per clip;
            the total size stays within ``[1 / max_scale, max_scale]``.
        boundary: ``"bounce"`` or ``"wrap"`` (module docstring).
    """

    def __init__(
        self,
        generator: MaskGenerator,
        min_speed: float = 0.02,
        max_speed: float = 0.06,
        acceleration: float = 0.004,
        max_rotation: float = 2.0,
        max_scale_change: float = 0.02,
        max_scale: float = 1.3,
        boundary: str = "bounce",
    ) -> None:
        if not callable(generator):
            raise ValueError(f"MovingMask: generator is not callable: {generator!r}")
        self.min_speed = _check_nonnegative("min_speed", min_speed)
        self.max_speed = _check_nonnegative("max_speed", max_speed)
        if self.min_speed > self.max_speed:
            raise ValueError(f"min_speed ({min_speed!r}) must be <= max_speed ({max_speed!r})")
        self.acceleration = _check_nonnegative("acceleration", acceleration)
        self.max_rotation = _check_nonnegative("max_rotation", max_rotation)
        self.max_scale_change = _check_nonnegative("max_scale_change", max_scale_change)
        if not math.isfinite(max_scale) or max_scale < 1:
            raise ValueError(f"max_scale must be a finite number >= 1, got {max_scale!r}")
        self.max_scale = float(max_scale)
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
        self.generator = generator
        self.boundary = boundary

    def __call__(self, rng: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
        _check_frames(frames, height, width)
        base = _image_mask(self.generator, rng, height, width)
        out = np.empty((int(frames), height, width), np.uint8)
        out[0] = base
        ys, xs = np.nonzero(base)
        if xs.size == 0:  # nothing to move
            out[1:] = 0
            return out
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])  # pixel-edge coordinates
        half = np.array([(x1 - x0) / 2, (y1 - y0) / 2])
        unit = min(height, width)
        angle = rng.uniform(0, 2 * math.pi)
        velocity = (
            rng.uniform(self.min_speed, self.max_speed) * unit * np.array([math.cos(angle), math.sin(angle)])
        )
        turn = math.radians(rng.uniform(-self.max_rotation, self.max_rotation))
        grow = rng.uniform(-self.max_scale_change, self.max_scale_change)
        position, rotation, scale = centre.copy(), 0.0, 1.0
        size = np.array([width, height], dtype=np.float64)
        border = cv2.BORDER_WRAP if self.boundary == "wrap" else cv2.BORDER_CONSTANT
        for t in range(1, int(frames)):
            velocity = velocity + rng.normal(0.0, self.acceleration * unit, size=2)
            rotation += turn
            scale = min(max(scale * (1 + grow), 1 / self.max_scale), self.max_scale)
            position = position + velocity
            if self.boundary == "bounce":
                cos, sin = abs(math.cos(rotation)), abs(math.sin(rotation))
                extent = scale * np.array([half[0] * cos + half[1] * sin, half[0] * sin + half[1] * cos])
                lo, hi = extent, size - extent
                for axis in range(2):
                    if lo[axis] >= hi[axis]:  # the shape fills this axis: it cannot move along it
                        position[axis], velocity[axis] = size[axis] / 2, 0.0
                        continue
                    if position[axis] < lo[axis]:
                        position[axis], velocity[axis] = 2 * lo[axis] - position[axis], abs(velocity[axis])
                    elif position[axis] > hi[axis]:
                        position[axis], velocity[axis] = 2 * hi[axis] - position[axis], -abs(velocity[axis])
                    position[axis] = min(max(position[axis], lo[axis]), hi[axis])
            else:
                position = np.mod(position, size)
            # source point = centre + R(-rotation) (dest - position) / scale: warpAffine's inverse map
            cos, sin = math.cos(rotation) / scale, math.sin(rotation) / scale
            linear = np.array([[cos, sin], [-sin, cos]])
            matrix = np.hstack([linear, (centre - linear @ position)[:, None]]) + _half_pixel(linear)
            out[t] = cv2.warpAffine(
                base,
                matrix,
                (width, height),
                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                borderMode=border,
                borderValue=0,
            )
        return out


def _half_pixel(linear: np.ndarray) -> np.ndarray:
    """Offset that turns a map between pixel-edge coordinates into one between pixel indices (centres at +0.5)."""
    shift = 0.5 * (linear @ np.ones(2) - np.ones(2))
    return np.hstack([np.zeros((2, 2)), shift[:, None]])


class MixedVideoMask:
    """Picks one of ``generators`` (video generators) per clip with the given (re-normalised) probabilities.

    Both may be lists, or dicts with the same names (``conf/mask/video_mixed.yaml`` composes its entries by name).
    """

    def __init__(
        self,
        generators: Sequence[VideoMaskGenerator] | Mapping[str, VideoMaskGenerator],
        probabilities: Sequence[float] | Mapping[str, float],
    ) -> None:
        if isinstance(generators, Mapping):
            if not isinstance(probabilities, Mapping) or set(probabilities) != set(generators):
                raise ValueError(
                    f"MixedVideoMask: probabilities must name the same entries as generators "
                    f"({', '.join(generators)}), got {probabilities!r}"
                )
            probabilities = [probabilities[name] for name in generators]
            generators = list(generators.values())
        picker = MixedMask(list(generators), probabilities)  # the same checks and normalisation as for images
        self.generators = picker.generators
        self.probabilities = picker.probabilities

    def __call__(self, rng: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
        index = int(rng.choice(len(self.generators), p=self.probabilities))
        return self.generators[index](rng, frames, height, width)


class AreaFilteredVideoMask:
    """Redraws ``generator`` until the mean hole fraction over the frames lies in ``[min_fraction, max_fraction]``;
    a RuntimeError after ``max_tries`` misses (as :class:`inpainting.data.masks.AreaFilteredMask` for images)."""

    def __init__(
        self,
        generator: VideoMaskGenerator,
        min_fraction: float = 0.0,
        max_fraction: float = 1.0,
        max_tries: int = 100,
    ) -> None:
        if not callable(generator):
            raise ValueError(f"AreaFilteredVideoMask: generator is not callable: {generator!r}")
        if not 0 <= min_fraction <= max_fraction <= 1:
            raise ValueError(
                "AreaFilteredVideoMask: need 0 <= min_fraction <= max_fraction <= 1, got "
                f"min_fraction={min_fraction!r}, max_fraction={max_fraction!r}"
            )
        if int(max_tries) != max_tries or max_tries < 1:
            raise ValueError(f"max_tries must be an int >= 1, got {max_tries!r}")
        self.generator = generator
        self.min_fraction, self.max_fraction = float(min_fraction), float(max_fraction)
        self.max_tries = int(max_tries)

    def __call__(self, rng: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
        seen: list[float] = []
        for _ in range(self.max_tries):
            mask = self.generator(rng, frames, height, width)
            fraction = np.count_nonzero(mask) / mask.size
            if self.min_fraction <= fraction <= self.max_fraction:
                return mask
            seen.append(fraction)
        raise RuntimeError(
            f"AreaFilteredVideoMask: no clip mask with mean hole fraction in [{self.min_fraction}, "
            f"{self.max_fraction}] after {self.max_tries} draws at {frames}x{height}x{width} (drawn fractions ranged "
            f"{min(seen):.3f}..{max(seen):.3f}); loosen the range, raise max_tries, or change the generator"
        )


__all__ = [
    "AreaFilteredVideoMask",
    "MixedVideoMask",
    "MovingMask",
    "StaticMask",
    "VideoMaskGenerator",
]
