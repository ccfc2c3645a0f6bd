"""Classical baselines: shared contract (shape, dtype, known pixels untouched) and plausible hole filling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from inpainting.evaluation import baselines
from inpainting.evaluation.baselines import BASELINES, get_baseline

H, W = 32, 40


def _has_patchmatch() -> bool:
    try:
        baselines._import_patchmatch()
    except ImportError:
        return False
    return True


NAMES = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            name == "patchmatch" and not _has_patchmatch(), reason="pip install pypatchmatch"
        ),
    )
    for name in BASELINES
]


def _mask() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[10:20, 12:26] = 1
    mask[2:4, 30:36] = 1
    return mask


def _textured_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:H, 0:W]
    base = np.stack([4 * x, 6 * y, 2 * (x + y)], axis=-1) + rng.integers(0, 20, (H, W, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", NAMES)
def test_contract_shape_dtype_known_pixels(name: str) -> None:
    image, mask = _textured_image(), _mask()
    damaged = image.copy()
    damaged[mask == 1] = 0  # what an evaluator passes in: the hole content must not matter for known pixels
    out = get_baseline(name)(damaged, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], damaged[mask == 0])  # bit-identical outside the hole
    assert not np.array_equal(out[mask == 1], damaged[mask == 1])  # the hole was filled


@pytest.mark.parametrize("name", NAMES)
def test_constant_image_is_filled_with_its_colour(name: str) -> None:
    colour = np.array([200, 120, 40], np.uint8)
    image = np.broadcast_to(colour, (H, W, 3)).copy()
    mask = _mask()
    image[mask == 1] = 0
    out = get_baseline(name)(image, mask)
    err = np.abs(out[mask == 1].astype(int) - colour.astype(int))
    assert err.max() <= 2, f"{name}: hole not filled with the surrounding colour (max error {err.max()})"


@pytest.mark.parametrize("name", NAMES)
def test_empty_mask_returns_copy_and_bool_or_255_masks_work(name: str) -> None:
    image = _textured_image()
    method = get_baseline(name)
    out = method(image, np.zeros((H, W), np.uint8))
    assert np.array_equal(out, image) and out is not image
    mask = _mask()
    a = method(image, mask)
    assert np.array_equal(a, method(image, mask.astype(bool)))
    assert np.array_equal(a, method(image, mask * 255))


def test_get_baseline_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="telea, navier_stokes, biharmonic, patchmatch"):
        get_baseline("nope")


def test_factory_kwargs_and_pickle() -> None:
    method = get_baseline("telea", radius=5)
    assert method.radius == 5
    clone = pickle.loads(pickle.dumps(method))
    image, mask = _textured_image(), _mask()
    assert np.array_equal(clone(image, mask), method(image, mask))


def test_bad_inputs_are_rejected() -> None:
    method = get_baseline("telea")
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        method(np.zeros((H, W, 3), np.float32), _mask())
    with pytest.raises(ValueError, match="mask must be H x W"):
        method(_textured_image(), np.zeros((H + 1, W), np.uint8))


def test_patchmatch_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "patchmatch":
            raise ImportError("No module named 'patchmatch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install pypatchmatch"):
        get_baseline("patchmatch")
