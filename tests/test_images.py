"""inpainting.data.images: any file -> RGB uint8, clear errors; list_images; transforms."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inpainting.data.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    NoImagesFoundError,
    list_images,
    read_image_rgb,
    read_mask,
)
from inpainting.data.transforms import eval_transform, train_transform


def _check_rgb(arr: np.ndarray, shape_hw: tuple[int, int]) -> None:
    assert arr.dtype == np.uint8
    assert arr.shape == (*shape_hw, 3)
    assert arr.flags["C_CONTIGUOUS"]


def test_greyscale_is_replicated(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    out = read_image_rgb(tmp_path / "g.png")
    _check_rgb(out, (3, 4))
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_rgba_composited_over_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red stays red
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent black -> white
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image_rgb(tmp_path / "a.png")
    _check_rgb(out, (2, 3))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert 120 <= out[0, 2, 0] <= 135


def test_palette_and_la(tmp_path):
    pal = Image.new("P", (3, 2))
    pal.putpalette([0, 0, 0, 10, 200, 30])
    pal.putpixel((0, 0), 1)
    pal.save(tmp_path / "p.png")
    out = read_image_rgb(tmp_path / "p.png")
    _check_rgb(out, (2, 3))
    assert out[0, 0].tolist() == [10, 200, 30]
    assert out[1, 1].tolist() == [0, 0, 0]
    Image.new("LA", (3, 2), (40, 255)).save(tmp_path / "la.png")
    assert read_image_rgb(tmp_path / "la.png")[0, 0].tolist() == [40, 40, 40]


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    out = read_image_rgb(tmp_path / "deep.png")
    _check_rgb(out, (1, 4))
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]  # clipping would give [0, 255, 255, 255]


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    out = read_image_rgb(tmp_path / "c.jpg")
    _check_rgb(out, (4, 4))
    assert out[0, 0, 0] > 200 and out[0, 0, 1] < 60  # red


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide, 20 high
    arr[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.fromarray(arr).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    out = read_image_rgb(tmp_path / "phone.jpg")
    _check_rgb(out, (40, 20))  # displayed upright: 20 wide, 40 high
    assert out[:15].mean() > 200 and out[25:].mean() < 50  # the white left half is now on top


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_corrupt_file_raises_named_error(tmp_path, content):
    bad = tmp_path / "broken.png"
    bad.write_bytes(content)
    with pytest.raises(ImageReadError, match="broken.png") as info:
        read_image_rgb(bad)
    assert isinstance(info.value, ValueError)
    assert info.value.path == bad


def test_truncated_jpeg_and_missing_file(tmp_path):
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="t.jpg"):
        read_image_rgb(tmp_path / "t.jpg")
    with pytest.raises(ImageReadError, match="missing.png"):
        read_image_rgb(tmp_path / "missing.png")


def test_read_mask_thresholds_and_alpha(tmp_path):
    Image.fromarray(np.array([[0, 100, 200, 255]], np.uint8), "L").save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").tolist() == [[0, 0, 1, 1]]
    strokes = np.zeros((1, 2, 4), np.uint8)
    strokes[0, 0] = (255, 255, 255, 255)  # painted stroke on a transparent layer
    Image.fromarray(strokes, "RGBA").save(tmp_path / "s.png")
    assert read_mask(tmp_path / "s.png").tolist() == [[1, 0]]


def test_list_images_sorted_recursive_case_insensitive(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    for rel in ["z.PNG", "a.jpg", "b/c.JpEg", "b/d.gif", "b/notes.txt", ".hidden/x.png", "._resource.jpg"]:
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a.jpg", "b/c.JpEg", "b/d.gif", "z.PNG"]
    flat = [p.name for p in list_images(tmp_path, recursive=False)]
    assert flat == ["a.jpg", "z.PNG"]
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"} == set(IMAGE_EXTENSIONS)


def test_list_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        list_images(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("no pictures")
    with pytest.raises(NoImagesFoundError) as info:
        list_images(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and ".jpg" in message and ".png" in message and "no images" in message


def test_transforms_handle_small_and_validate(tmp_path):
    small = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    for t in (train_transform(64), eval_transform(64)):
        assert t(image=small)["image"].shape == (64, 64, 3)
    big = np.zeros((300, 451, 3), np.uint8)
    mask = np.zeros((300, 451), np.uint8)
    mask[100:200, 200:300] = 1
    out = eval_transform(128)(image=big, mask=mask)
    assert out["image"].shape == (128, 128, 3) and out["mask"].shape == (128, 128)
    assert set(np.unique(out["mask"]).tolist()) == {0, 1}
    for bad in (0, -1, 2.5, True, "64"):
        with pytest.raises(ValueError, match="image_size"):
            train_transform(bad)
        with pytest.raises(ValueError, match="image_size"):
            eval_transform(bad)
