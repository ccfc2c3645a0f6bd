"""Named evaluation mask sets: determinism across processes, area ranges, export/load, image/mask pairs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inpainting.data.images import read_mask
from inpainting.evaluation import mask_sets, metrics
from inpainting.evaluation.mask_sets import (
    AREA_SETS,
    LAMA_SETS,
    MASK_SETS,
    export_mask_set,
    mask_set,
    read_image_mask_pairs,
    set_id,
)

H, W = 48, 64
REPO = Path(__file__).resolve().parents[1]


def _md5(masks: list[np.ndarray]) -> str:
    digest = hashlib.md5()
    for m in masks:
        digest.update(np.ascontiguousarray(m).tobytes())
    return digest.hexdigest()


def test_names_and_buckets_agree_with_metrics() -> None:
    assert (*LAMA_SETS, *AREA_SETS) == MASK_SETS
    assert mask_sets.AREA_BUCKETS == metrics.AREA_BUCKETS
    assert [name.removeprefix("area_") for name in AREA_SETS] == metrics.AREA_LABELS[:-1]
    assert set_id("thin") == 2649288446  # CRC32: fixed forever, not a salted hash()
    with pytest.raises(ValueError, match="valid names: thin, medium"):
        mask_set("huge", 1, H, W)


def test_same_masks_in_a_separate_process() -> None:
    code = (
        "import hashlib, numpy as np\n"
        "from inpainting.evaluation.mask_sets import mask_set\n"
        "d = hashlib.md5()\n"
        "for name in ('thin', 'area_30-40'):\n"
        f"    for m in mask_set(name, 3, {H}, {W}, seed=7):\n"
        "        d.update(np.ascontiguousarray(m).tobytes())\n"
        "print(d.hexdigest())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    here = _md5(mask_set("thin", 3, H, W, seed=7) + mask_set("area_30-40", 3, H, W, seed=7))
    assert result.stdout.strip() == here


def test_mask_i_does_not_depend_on_count_and_seed_matters() -> None:
    a = mask_set("medium", 4, H, W)
    b = mask_set("medium", 2, H, W)
    assert all(np.array_equal(x, y) for x, y in zip(a[:2], b, strict=True))
    assert _md5(mask_set("medium", 2, H, W, seed=1)) != _md5(b)
    assert mask_set("thick", 0, H, W) == []


@pytest.mark.parametrize("name", MASK_SETS)
def test_every_set_has_valid_masks_in_its_range(name: str) -> None:
    masks = mask_set(name, 5, H, W)
    for m in masks:
        assert m.shape == (H, W) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
        fraction = np.count_nonzero(m) / m.size
        if name in AREA_SETS:
            lo, hi = mask_sets.AREA_BUCKETS[AREA_SETS.index(name)]
            assert lo <= fraction < hi and fraction > 0
            assert metrics.area_bucket(fraction) == name.removeprefix("area_")
        else:
            assert 0 < fraction <= 0.5  # LaMa's max_tamper_area


def test_thin_medium_thick_are_ordered_by_stroke_width() -> None:
    """LaMa's names are stroke widths, not areas (their mean hole fractions are all about 0.23-0.31): the mean
    distance from a hole pixel to the nearest known pixel grows from thin to medium to thick."""

    def width(name: str) -> float:
        masks = mask_set(name, 12, 96, 96)
        return float(np.mean([cv2.distanceTransform(m, cv2.DIST_L2, 5)[m > 0].mean() for m in masks]))

    thin, medium, thick = width("thin"), width("medium"), width("thick")
    assert thin < medium < thick


def test_export_then_load_round_trip(tmp_path: Path) -> None:
    paths = export_mask_set("area_10-20", 3, H, W, tmp_path / "set", seed=3)
    assert [p.name for p in paths] == ["mask_00000.png", "mask_00001.png", "mask_00002.png"]
    assert cv2.imread(str(paths[0]), cv2.IMREAD_GRAYSCALE).max() == 255  # white = missing on disk
    loaded = [read_mask(p) for p in sorted((tmp_path / "set").glob("mask_*.png"))]
    original = mask_set("area_10-20", 3, H, W, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(loaded, original, strict=True))
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["name"] == "area_10-20" and manifest["seed"] == 3 and manifest["count"] == 3
    assert (manifest["height"], manifest["width"]) == (H, W)
    assert manifest["config"]["hole_fraction"] == {
        "min_inclusive": 0.1,
        "max_exclusive": 0.2,
        "at_least_one_hole_pixel": True,
    }
    assert "_target_" in manifest["config"]["generator"]
    assert (tmp_path / "set" / "README.txt").is_file()


def _touch_image(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))


def test_read_image_mask_pairs(tmp_path: Path) -> None:
    _touch_image(tmp_path / "a.png")
    _touch_image(tmp_path / "a_mask000.png", 255)
    _touch_image(tmp_path / "a_mask001.png", 255)
    _touch_image(tmp_path / "sub" / "b.jpg")
    _touch_image(tmp_path / "sub" / "b_mask.png", 255)
    pairs = read_image_mask_pairs(tmp_path)
    assert [(i.relative_to(tmp_path).as_posix(), m.relative_to(tmp_path).as_posix()) for i, m in pairs] == [
        ("a.png", "a_mask000.png"),
        ("a.png", "a_mask001.png"),
        ("sub/b.jpg", "sub/b_mask.png"),
    ]


def test_read_image_mask_pairs_lists_every_problem(tmp_path: Path) -> None:
    _touch_image(tmp_path / "a.png")
    _touch_image(tmp_path / "a_mask.png", 255)
    _touch_image(tmp_path / "lonely1.png")
    _touch_image(tmp_path / "lonely2.png")
    _touch_image(tmp_path / "ghost_mask.png", 255)
    with pytest.raises(ValueError) as info:
        read_image_mask_pairs(tmp_path)
    message = str(info.value)
    assert "images without a mask" in message and "lonely1.png" in message and "lonely2.png" in message
    assert "masks without an image: ghost_mask.png" in message
    assert "a.png" not in message.replace("ghost_mask.png", "")
