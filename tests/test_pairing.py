"""One rule pairs an image with its mask files, whichever tool reads the folder (predict, evaluate, datasets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from inpainting.data.datasets import match_mask_files
from inpainting.data.images import mask_owner_stem, split_images_and_masks
from inpainting.data.predict_plan import plan_folder
from inpainting.evaluation.mask_sets import read_image_mask_pairs

IMAGES = ["scan.png", "scan_mask_v2.png", "photo.jpg", "a/b.png"]
MASKS = {  # mask file -> the image it belongs to
    "scan_mask000.png": "scan.png",
    "scan_mask_v2_mask001.png": "scan_mask_v2.png",
    "photo_mask.png": "photo.jpg",
    "photo_mask001.png": "photo.jpg",
    "a/b_mask0.png": "a/b.png",
}


def write(folder: Path, names: list[str]) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)


def expected(root: Path) -> set[tuple[Path, Path]]:
    return {(root / image, root / mask) for mask, image in MASKS.items()}


def test_owner_is_the_stem_before_the_last_mask_tag():
    assert mask_owner_stem("scan_mask_v2_mask001") == "scan_mask_v2"
    assert mask_owner_stem("photo_mask") == "photo"
    assert mask_owner_stem("photo") is None and mask_owner_stem("_mask1") is None


def test_every_reader_pairs_tricky_names_the_same_way(tmp_path):
    write(tmp_path, IMAGES + list(MASKS))
    files = sorted(p for p in tmp_path.rglob("*.*"))
    images, masks = split_images_and_masks(files)
    assert sorted(images) == sorted(tmp_path / n for n in IMAGES)
    assert {(i, m) for i, ms in masks.items() for m in ms} == expected(tmp_path)
    assert set(read_image_mask_pairs(tmp_path)) == expected(tmp_path)
    jobs, problems = plan_folder(tmp_path, None, tmp_path / "out")
    assert {(job.image, job.mask) for job in jobs} == expected(tmp_path) and not problems


def test_a_mirrored_mask_folder_uses_the_same_rule(tmp_path):
    """datasets' mask_root pairing: a mask named after the image's stem and the last ``_mask``."""
    write(tmp_path / "images", ["scan_mask_v2.png"])
    write(tmp_path / "masks", ["scan_mask_v2_mask001.png"])
    (mask,) = match_mask_files(
        [tmp_path / "images" / "scan_mask_v2.png"], tmp_path / "images", tmp_path / "masks"
    )
    assert mask.name == "scan_mask_v2_mask001.png"
