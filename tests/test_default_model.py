"""The shipped default model (inpainting/weights/sa_unet_default.pt): it loads with no ckpt_path and has learned
something its own starting point (the push-pull fill) does not know, on photos it was never trained on."""

from __future__ import annotations

import numpy as np
import pytest

from inpainting.evaluation.baselines import get_baseline
from inpainting.evaluation.mask_sets import mask_set
from inpainting.inference import Inpainter, load_model
from inpainting.inference.checkpoint import default_weights_path

skimage_data = pytest.importorskip("skimage.data")


def _held_out_photos(size: int = 192) -> list[np.ndarray]:
    """scikit-image's colour photos (the model was trained on other photos), centre-cropped to squares."""
    photos = []
    for name in ("astronaut", "chelsea", "coffee"):
        image = getattr(skimage_data, name)()
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        square = image[top : top + side, left : left + side]
        step = side // size
        photos.append(np.ascontiguousarray(square[::step, ::step][:size, :size]))
    return photos


def _hole_psnr(result: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    diff = result.astype(np.float64)[mask > 0] - truth.astype(np.float64)[mask > 0]
    return float(10 * np.log10(255.0**2 / np.mean(diff**2)))


def test_default_model_ships_and_loads_without_a_checkpoint_path():
    path = default_weights_path()
    assert path.is_file(), f"{path} is missing: the package must ship its default model"
    assert path.stat().st_size < 25 * 2**20
    model = load_model(None)
    assert model.info["model"]["_target_"].endswith("SAUNet") and model.info["model"]["fill_prior"] is True


def test_default_model_beats_its_own_push_pull_start_on_unseen_photos():
    model = Inpainter(load_model(None), "full")
    push_pull = get_baseline("push_pull")
    photos = _held_out_photos()
    masks = mask_set("thick", len(photos), *photos[0].shape[:2])
    gains = []
    for photo, mask in zip(photos, masks, strict=True):
        filled = model(photo, mask)
        assert np.array_equal(filled[mask == 0], photo[mask == 0])
        gains.append(_hole_psnr(filled, photo, mask) - _hole_psnr(push_pull(photo, mask), photo, mask))
    # an untrained (zero-head) net scores exactly 0 here, a broken or random one below it
    assert np.mean(gains) > 0.1, gains
