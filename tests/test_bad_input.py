"""What a careful tester feeds ``predict``: hostile, broken and odd files, odd names, extreme shapes and every
way of drawing a mask. Each bad file is reported with its name and skipped; every good one comes back with its
known pixels untouched. (Killed runs and half-written checkpoints: tests/test_crash_safety.py.)"""

# ruff: noqa: F811  (the predict/weights fixtures come from tests/test_predict.py)
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inpainting.data.images import ImageReadError, list_images, read_image_rgb, read_mask
from tests.test_inference import holes, photo
from tests.test_predict import predict, weights  # noqa: F401  (fixtures: in-process predict, tiny model)


def _pair(folder: Path, name: str, image: np.ndarray, mode: str | None = None, suffix: str = ".png") -> Path:
    """Write ``name<suffix>`` and ``name_mask.png`` (a box hole) into ``folder``; returns the image path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    (Image.fromarray(image).convert(mode) if mode else Image.fromarray(image)).save(path)
    h, w = image.shape[:2]
    hole = holes(h, w, [(h // 4, w // 4, max(h // 2, h // 4 + 1), max(w // 2, w // 4 + 1))])
    Image.fromarray(hole * 255).save(folder / f"{name}_mask.png")
    return path


def _assert_known_pixels_kept(source: Path, mask: Path, output: Path) -> None:
    original, filled, hole = read_image_rgb(source), read_image_rgb(output), read_mask(mask)
    assert filled.shape == original.shape
    assert np.array_equal(filled[hole == 0], original[hole == 0]), output


def test_a_folder_of_bad_files_odd_names_and_odd_shapes(predict, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    good = {
        "café 写真": _pair(src, "café 写真", photo(30, 40)),  # unicode name
        "two\nlines": _pair(src, "two\nlines", photo(30, 40)),  # a newline in the name
        "one_pixel": _pair(src, "one_pixel", photo(1, 1)),
        "sliver": _pair(src, "sliver", photo(5000, 3)),  # 3 wide, 5000 tall
        "cmyk": _pair(src, "cmyk", photo(30, 40), mode="CMYK", suffix=".jpg"),
    }
    deep = (photo(30, 40)[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    good["deep16"] = _pair(src, "deep16", deep, suffix=".tif")  # 16-bit TIFF
    (src / "zero.png").write_bytes(b"")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(src / "zero_mask.png")
    _pair(src, "truncated", photo(60, 80))
    data = (src / "truncated.png").read_bytes()
    (src / "truncated.png").write_bytes(data[: len(data) // 2])
    (src / "loop.png").symlink_to(src / "loop.png")  # a link to itself
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(src / "loop_mask.png")
    (src / "sub").mkdir()
    (src / "sub" / "back").symlink_to(src, target_is_directory=True)  # a folder loop

    result = predict(f"input={src}", f"output={out}")

    failed = {p.name: why for p, why in result.failed}
    assert set(failed) == {"zero.png", "truncated.png", "loop.png"}, failed
    assert "zero.png" in failed["zero.png"] and "empty (0 bytes)" in failed["zero.png"]
    assert "loop.png" in failed["loop.png"] and "symbolic link that leads nowhere" in failed["loop.png"]
    assert (
        "truncated.png" in failed["truncated.png"] and "truncated" in failed["truncated.png"].split(":")[-1]
    )
    written = {p.stem for p in result.written}
    assert written == set(good), written
    for name, source in good.items():
        _assert_known_pixels_kept(source, source.parent / f"{name}_mask.png", out / f"{name}.png")
    assert read_image_rgb(out / "sliver.png").shape == (5000, 3, 3)


def test_listing_follows_a_folder_loop_once(tmp_path):
    _pair(tmp_path, "a", photo(8, 8))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "back").symlink_to(tmp_path, target_is_directory=True)
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "a_mask.png"]


def test_a_decompression_bomb_is_refused_by_name(predict, tmp_path, monkeypatch):
    """Pillow's guard (on by default at ~179 Mpx) refuses a file whose header promises too many pixels; shrink the
    limit so the test needs no gigabytes."""
    source = _pair(tmp_path, "bomb", photo(120, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000)  # 12000 px > 2 x 2000: an error, not a warning
    with pytest.raises(ImageReadError, match=r"bomb\.png.*decompression-bomb"):
        read_image_rgb(source)
    with pytest.raises(ValueError, match=r"bomb\.png"):
        predict(f"input={source}", f"output={tmp_path / 'o.png'}")


def test_an_animated_gif_is_read_as_its_first_frame(predict, tmp_path):
    frames = [Image.fromarray(photo(30, 40, seed=i)) for i in range(3)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.fromarray(holes(30, 40, [(5, 5, 15, 20)]) * 255).save(tmp_path / "anim_mask.png")
    (out,) = predict(f"input={gif}", f"output={tmp_path / 'o.png'}").written
    first = read_image_rgb(gif)
    with Image.open(gif) as opened:
        assert opened.n_frames == 3 and np.array_equal(first, np.asarray(opened.convert("RGB")))
    _assert_known_pixels_kept(gif, tmp_path / "anim_mask.png", out)


def _mask_file(path: Path, hole: np.ndarray, kind: str) -> Path:
    """The same hole drawn as a painting tool might save it."""
    white = (hole * 255).astype(np.uint8)
    if kind == "grey":
        Image.fromarray(white).save(path)
    elif kind == "one_bit":
        Image.fromarray(white).convert("1").save(path)
    elif kind == "rgb":  # white strokes on black
        Image.fromarray(np.dstack([white] * 3)).save(path)
    elif kind == "rgba":  # white strokes on a transparent layer
        Image.fromarray(np.dstack([white] * 3 + [white])).save(path)
    elif kind == "palette":
        Image.fromarray(np.dstack([white] * 3)).convert("P").save(path)
    elif kind == "jpeg":  # lossy: the threshold (127) absorbs the ringing
        Image.fromarray(white).save(path, quality=70)
    return path


@pytest.mark.parametrize("kind", ["grey", "one_bit", "rgb", "rgba", "palette", "jpeg"])
def test_every_way_of_drawing_a_mask_gives_the_same_hole(predict, tmp_path, kind):
    image = photo(40, 48)
    source = tmp_path / "p.png"
    Image.fromarray(image).save(source)
    hole = holes(40, 48, [(8, 8, 24, 30)])
    mask = _mask_file(tmp_path / ("m.jpg" if kind == "jpeg" else "m.png"), hole, kind)
    assert np.array_equal(read_mask(mask), hole), kind
    (out,) = predict(f"input={source}", f"mask_path={mask}", f"output={tmp_path / 'o.png'}").written
    filled = read_image_rgb(out)
    assert np.array_equal(filled[hole == 0], image[hole == 0])
    assert not np.array_equal(filled[hole == 1], image[hole == 1])


@pytest.mark.parametrize("value", [0, 255])
def test_all_zero_and_all_one_masks(predict, tmp_path, value):
    image = photo(24, 32)
    source = tmp_path / "p.png"
    Image.fromarray(image).save(source)
    Image.fromarray(np.full((24, 32), value, np.uint8)).save(tmp_path / "m.png")
    (out,) = predict(
        f"input={source}", f"mask_path={tmp_path / 'm.png'}", f"output={tmp_path / 'o.png'}"
    ).written
    filled = read_image_rgb(out)
    assert filled.shape == image.shape
    assert np.array_equal(filled, image) == (value == 0)  # nothing to fill / everything filled


def test_a_mask_of_the_wrong_size_names_both_files(predict, tmp_path):
    source = _pair(tmp_path, "p", photo(30, 40))
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(tmp_path / "p_mask.png")  # transposed
    with pytest.raises(ValueError, match=r"p\.png is 40x30 .*p_mask\.png is 30x40"):
        predict(f"input={source}", f"output={tmp_path / 'o.png'}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_names_itself(tmp_path):
    source = _pair(tmp_path, "locked", photo(8, 8))
    source.chmod(0)
    with pytest.raises(ImageReadError, match="locked.png"):
        read_image_rgb(source)
