"""Fixed, named, seeded evaluation mask sets for video clips, by hole-area bucket.

The video counterpart of :func:`inpainting.evaluation.mask_sets.mask_set`: ``area_00-10``, ..., ``area_50-60``, the
same buckets, with the hole fraction taken as the **mean over the clip's frames** (half-open ``[lo, hi)``;
``area_00-10`` also needs at least one hole pixel). Each clip mask is LaMa's thick generator (the shape source of the
image buckets, ``conf/mask/lama_thick.yaml`` without its 50% cap) moving and deforming through the clip
(:class:`inpainting.data.video_masks.MovingMask` with ``boundary="wrap"``, so even masks spread over the whole
frame move), redrawn until its mean fraction falls in the bucket.

Mask ``i`` of a set is drawn from ``numpy.random.default_rng((seed, set_id("video_" + name), i))``: it does not
depend on ``count``, on the other masks, or on the machine, and differs from the image set of the same name.
"""

from __future__ import annotations

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from inpainting.data.video_masks import AreaFilteredVideoMask, VideoMaskGenerator
from inpainting.errors import ConfigError
from inpainting.evaluation.mask_sets import (
    AREA_BUCKETS,
    AREA_MAX_TRIES,
    AREA_SETS,
    AREA_SOURCE,
    _yaml,
    set_id,
)

VIDEO_MASK_SETS: tuple[str, ...] = AREA_SETS


def _check_name(name: str) -> None:
    if name not in VIDEO_MASK_SETS:
        raise ConfigError(f"unknown video mask set {name!r}; valid names: {', '.join(VIDEO_MASK_SETS)}")


def video_mask_set_config(name: str) -> dict:
    """The generator configuration of video set ``name`` as plain data (what a manifest would record)."""
    _check_name(name)
    lo, hi = AREA_BUCKETS[VIDEO_MASK_SETS.index(name)]
    return {
        "yaml": f"conf/mask/{AREA_SOURCE}.yaml (inner generator, 50% cap removed), moving (wrap)",
        "generator": {
            "_target_": "inpainting.data.video_masks.MovingMask",
            "boundary": "wrap",
            "generator": _yaml(AREA_SOURCE)["generator"],
        },
        "hole_fraction": {
            "mean_over_frames": True,
            "min_inclusive": lo,
            "max_exclusive": hi,
            "at_least_one_hole_pixel": True,
        },
        "max_tries": AREA_MAX_TRIES,
    }


def video_mask_set_generator(name: str, frames: int, height: int, width: int) -> VideoMaskGenerator:
    """The generator that draws video set ``name`` for clips of ``frames`` x ``height`` x ``width``."""
    config = video_mask_set_config(name)
    lo, hi = config["hole_fraction"]["min_inclusive"], config["hole_fraction"]["max_exclusive"]
    return AreaFilteredVideoMask(
        instantiate(OmegaConf.create(config["generator"])),
        min_fraction=max(lo, 1 / (frames * height * width)),
        max_fraction=float(np.nextafter(hi, 0.0)),
        max_tries=AREA_MAX_TRIES,
    )


def video_mask_set(
    name: str, count: int, frames: int, height: int, width: int, seed: int = 0
) -> list[np.ndarray]:
    """``count`` clip masks (uint8 ``frames x height x width``, 1 = missing) of the named set; the same on every call."""
    _check_name(name)
    for option, value, minimum in (("count", count, 0), ("frames", frames, 1)):
        if isinstance(value, bool) or int(value) != value or value < minimum:
            raise ConfigError(f"{option} must be an int >= {minimum}, got {value!r}")
    generator = video_mask_set_generator(name, int(frames), height, width)
    sid = set_id(f"video_{name}")
    return [
        generator(np.random.default_rng((seed, sid, i)), int(frames), height, width)
        for i in range(int(count))
    ]


__all__ = ["VIDEO_MASK_SETS", "video_mask_set", "video_mask_set_config", "video_mask_set_generator"]
