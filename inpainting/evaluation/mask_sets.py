"""Fixed, named, seeded evaluation mask sets, their export to disk, and reading user-supplied image/mask pairs.

A results table is only comparable across methods and runs if every method sees the same masks, so evaluation
masks are named sets (as LaMa does: thin/medium/thick, plus the partial-convolution area buckets), not draws from
whatever the training generator is:

* ``thin``, ``medium``, ``thick`` (LaMa's 256 presets) and ``thin_512``, ``medium_512``, ``thick_512``:
  ``conf/mask/lama_<name>.yaml``. Their sizes are pixels at 256 (512) and scale with ``min(height, width)``.
* ``area_00-10``, ..., ``area_50-60``: hole fraction in the bucket's half-open range ``[lo, hi)``
  (Liu et al. 2018's protocol; the buckets of :data:`AREA_BUCKETS`). Drawn from LaMa's thick
  generator (``conf/mask/lama_thick.yaml`` without its 50% cap: lines and boxes whose coverage spreads over all six
  buckets) and redrawn until the fraction falls in the bucket; ``area_00-10`` also needs at least one hole pixel.

Mask ``i`` of a set is drawn from ``numpy.random.default_rng((seed, set_id, i))`` with ``set_id`` a CRC32 of the
name (stable across processes, unlike ``hash()``), so it does not depend on ``count``, on which other masks were
drawn, or on the machine.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import cv2
import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from inpainting.data.images import is_image_file, mask_owner_stem, split_images_and_masks
from inpainting.data.masks import AreaFilteredMask, MaskGenerator
from inpainting.errors import ConfigError
from inpainting.resources import conf_dir

CONF_MASK_DIR = conf_dir() / "mask"

#: Hole-fraction buckets of the partial-convolution protocol, half-open ``[lo, hi)``: the area mask sets and the
#: tables' buckets (:mod:`inpainting.evaluation.metrics`). Defined here, where no torch import is needed to draw or
#: export masks.
AREA_BUCKETS: list[tuple[float, float]] = [(k / 10, (k + 1) / 10) for k in range(6)]

LAMA_SETS: tuple[str, ...] = ("thin", "medium", "thick", "thin_512", "medium_512", "thick_512")
AREA_SETS: tuple[str, ...] = tuple(
    f"area_{round(lo * 100):02d}-{round(hi * 100):02d}" for lo, hi in AREA_BUCKETS
)
MASK_SETS: tuple[str, ...] = LAMA_SETS + AREA_SETS

AREA_SOURCE = "lama_thick"  # the yaml whose inner generator feeds the area buckets
AREA_MAX_TRIES = (
    2000  # the rarest bucket takes about 1 in 12 draws at any size; this never runs out in practice
)


def set_id(name: str) -> int:
    """Stable integer id of a set name (CRC32), part of every mask's seed."""
    return zlib.crc32(name.encode("utf-8"))


def _check_name(name: str) -> None:
    if name not in MASK_SETS:
        raise ConfigError(f"unknown mask set {name!r}; valid names: {', '.join(MASK_SETS)}")


def mask_set_config(name: str) -> dict:
    """The generator configuration of set ``name`` as plain data (what the manifest records)."""
    _check_name(name)
    if name in LAMA_SETS:
        return {"yaml": f"conf/mask/lama_{name}.yaml", "generator": _yaml(f"lama_{name}")}
    lo, hi = AREA_BUCKETS[AREA_SETS.index(name)]
    return {
        "yaml": f"conf/mask/{AREA_SOURCE}.yaml (inner generator, 50% cap removed)",
        "generator": _yaml(AREA_SOURCE)["generator"],
        "hole_fraction": {"min_inclusive": lo, "max_exclusive": hi, "at_least_one_hole_pixel": True},
        "max_tries": AREA_MAX_TRIES,
    }


def _yaml(stem: str) -> dict:
    path = CONF_MASK_DIR / f"{stem}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"mask config {path} not found (the conf/ folder next to the package)")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def mask_set_generator(name: str, height: int, width: int) -> MaskGenerator:
    """The generator that draws set ``name`` at ``height`` x ``width``."""
    config = mask_set_config(name)
    generator = instantiate(OmegaConf.create(config["generator"]))
    if name in LAMA_SETS:
        return generator
    lo, hi = config["hole_fraction"]["min_inclusive"], config["hole_fraction"]["max_exclusive"]
    # [lo, hi) on the fractions count / size: the largest double below hi is an inclusive upper bound
    return AreaFilteredMask(
        generator,
        min_fraction=max(lo, 1 / (height * width)),
        max_fraction=float(np.nextafter(hi, 0.0)),
        max_tries=AREA_MAX_TRIES,
    )


def mask_set(name: str, count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` masks (uint8 ``height x width``, 1 = missing) of the named set; the same on every call."""
    _check_name(name)
    if int(count) != count or count < 0:
        raise ConfigError(f"count must be an int >= 0, got {count!r}")
    generator = mask_set_generator(name, height, width)
    sid = set_id(name)
    return [generator(np.random.default_rng((seed, sid, i)), height, width) for i in range(int(count))]


def export_mask_set(
    name: str, count: int, height: int, width: int, out_dir: str | Path, seed: int = 0
) -> list[Path]:
    """Write the set as ``mask_{i:05d}.png`` (white 255 = missing) plus ``manifest.json`` and ``README.txt``.

    Returns the mask paths. Exported folders let other code (or other papers' evaluators) use exactly these masks.
    """
    masks = mask_set(name, count, height, width, seed)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, mask in enumerate(masks):
        path = out / f"mask_{i:05d}.png"
        if not cv2.imwrite(str(path), mask * np.uint8(255)):
            raise OSError(f"could not write {path}")
        paths.append(path)
    fractions = [float(np.count_nonzero(m)) / m.size for m in masks]
    manifest = {
        "name": name,
        "seed": seed,
        "set_id": set_id(name),
        "height": height,
        "width": width,
        "count": count,
        "rng": "numpy.random.default_rng((seed, set_id, index))",
        "encoding": "mask_{index:05d}.png, 8-bit greyscale, 255 = missing, 0 = known",
        "mean_hole_fraction": float(np.mean(fractions)) if fractions else None,
        "config": mask_set_config(name),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "README.txt").write_text(
        f"Evaluation mask set {name!r}: {count} masks of {height}x{width}, seed {seed}.\n"
        "White (255) = missing. Regenerate with:\n"
        f'  python -c "from inpainting.evaluation.mask_sets import export_mask_set; export_mask_set({name!r}, {count}, '
        f"{height}, {width}, 'OUT', seed={seed})\"\n"
        "manifest.json holds the generator configuration.\n"
    )
    return paths


def read_image_mask_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """Pairs ``(image, mask)`` from a folder (searched recursively) laid out as LaMa's evaluation folders are.

    ``photo.png`` (any image extension) goes with ``photo_mask.png``, ``photo_mask001.png``, ... (white =
    missing); one pair per mask, sorted; the pairing rule is :func:`inpainting.data.images.split_images_and_masks`
    (a mask is named after its image's stem and the last ``_mask``). Images without any mask, and ``*_mask*`` files
    without their image, raise a ValueError that lists them all.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image/mask folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if is_image_file(p) and p.is_file())
    images, masks = split_images_and_masks(files)  # the one pairing rule (inpainting.data.images)
    unpaired = [p for p in images if p not in masks]
    orphans = [
        p for p in unpaired if mask_owner_stem(p.stem) is not None
    ]  # *_mask* files without their image
    lonely = [p for p in unpaired if p not in orphans]
    problems = []
    if lonely:
        problems.append(
            "images without a mask (expected <name>_mask*.png beside each): " + _list(lonely, root)
        )
    if orphans:
        problems.append("masks without an image: " + _list(orphans, root))
    if problems:
        raise ValueError(f"{root}: " + "; ".join(problems))
    if not images:
        raise FileNotFoundError(f"no images found under {root}")
    return [(image, mask) for image in sorted(masks) for mask in masks[image]]


def _list(paths: list[Path], root: Path, limit: int = 20) -> str:
    names = [str(p.relative_to(root)) for p in paths]
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
