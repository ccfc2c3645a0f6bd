"""`python -m inpainting.predict`: single files and folders, mask conventions, odd inputs, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from inpainting.data.images import read_image_rgb
from inpainting.data.predict_plan import OutputError
from inpainting.inference import checkpoint
from inpainting.inference.predict_runner import run
from tests.conftest import CONF_DIR, compose_config
from tests.test_inference import holes, photo, tiny_generator_file


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return tiny_generator_file(tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.fixture
def predict(tmp_path, weights):
    """``predict(*overrides)`` runs inpainting.predict in-process with the tiny model."""

    def make(*overrides: str):
        cfg = compose_config(
            tmp_path, [f"ckpt_path={weights}", "progress=false", *overrides], config_name="predict"
        )
        return run(cfg)

    yield make
    GlobalHydra.instance().clear()


def save(array: np.ndarray, path: Path, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def save_mask(mask: np.ndarray, path: Path) -> Path:
    return save((mask * 255).astype(np.uint8), path)


def test_single_file_cli_creates_missing_output_folder(tmp_path, weights):
    image, mask = photo(301, 517), holes(301, 517, [(100, 200, 160, 290)])
    src, msk = save(image, tmp_path / "photo.png"), save_mask(mask, tmp_path / "photo_mask.png")
    out = tmp_path / "not" / "yet" / "there.png"
    result = subprocess.run(
        [sys.executable, "-m", "inpainting.predict", f"ckpt_path={weights}", f"input={src}", f"mask={msk}"]
        + [f"output={out}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        cwd=CONF_DIR.parent,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    filled = read_image_rgb(out)
    assert np.array_equal(filled[mask == 0], image[mask == 0])
    assert not np.array_equal(filled[mask == 1], image[mask == 1])


def test_folder_with_beside_masks_odd_formats_and_a_corrupt_file(predict, tmp_path):
    src = tmp_path / "in"
    rgb = photo(40, 60)
    mask = holes(40, 60, [(10, 10, 25, 30)])
    save(rgb, src / "rgb.png")
    save(rgb[..., 0], src / "sub" / "grey.png")  # greyscale, in a sub-folder
    rgba = np.dstack([rgb, np.full((40, 60), 255, np.uint8)])
    save(rgba, src / "rgba.png")
    save((rgb[..., 1].astype(np.uint16) * 257), src / "deep.png")  # 16-bit greyscale
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    save(rgb, src / "lonely.png")  # no mask
    for name in ("rgb", "sub/grey", "rgba", "deep", "broken"):
        save_mask(mask, src / f"{name}_mask.png")
    save_mask(mask, src / "two_mask1.png"), save_mask(1 - mask, src / "two_mask2.png")
    save(rgb, src / "two.png")
    out = tmp_path / "out"
    result = predict(f"input={src}", f"output={out}")

    written = sorted(p.relative_to(out).as_posix() for p in result.written)
    assert written == ["deep.png", "rgb.png", "rgba.png", "sub/grey.png", "two_mask1.png", "two_mask2.png"]
    assert sorted(p.name for p, _ in result.failed) == ["broken.png", "lonely.png"]
    assert any("no mask" in why for _, why in result.failed)
    for name in ("rgb", "sub/grey", "rgba", "deep"):
        original = read_image_rgb(src / f"{name}.png")
        filled = read_image_rgb(out / f"{name}.png")
        assert np.array_equal(filled[mask == 0], original[mask == 0]), name
    assert np.array_equal(read_image_rgb(out / "two_mask2.png")[mask == 1], rgb[mask == 1])


def test_folder_with_mirrored_mask_folder(predict, tmp_path):
    image, mask = photo(33, 47), holes(33, 47, [(5, 5, 20, 20)])
    save(image, tmp_path / "in" / "a" / "p.jpg")
    save_mask(mask, tmp_path / "masks" / "a" / "p.png")
    result = predict(
        f"input={tmp_path / 'in'}", f"mask_path={tmp_path / 'masks'}", f"output={tmp_path / 'out'}"
    )
    assert [p.relative_to(tmp_path / "out").as_posix() for p in result.written] == ["a/p.png"]
    original = read_image_rgb(tmp_path / "in" / "a" / "p.jpg")
    assert np.array_equal(read_image_rgb(result.written[0])[mask == 0], original[mask == 0])


def test_threshold_and_invert(predict, tmp_path):
    image = photo(32, 32)
    grey = np.zeros((32, 32), np.uint8)
    grey[:, :16] = 100  # below the default threshold: not a hole
    grey[:, 16:] = 200
    save(image, tmp_path / "p.png"), save(grey, tmp_path / "m.png")
    run_args = [f"input={tmp_path / 'p.png'}", f"mask_path={tmp_path / 'm.png'}"]
    (out,) = predict(*run_args, f"output={tmp_path / 'a.png'}").written
    filled = read_image_rgb(out)
    assert np.array_equal(filled[:, :16], image[:, :16]) and not np.array_equal(filled[:, 16:], image[:, 16:])
    (out,) = predict(*run_args, "invert=true", f"output={tmp_path / 'b.png'}").written
    filled = read_image_rgb(out)
    assert np.array_equal(filled[:, 16:], image[:, 16:]) and not np.array_equal(filled[:, :16], image[:, :16])
    (out,) = predict(*run_args, "threshold=50", f"output={tmp_path / 'c.png'}").written
    assert not np.array_equal(read_image_rgb(out)[:, :16], image[:, :16])


def test_all_zero_mask_writes_the_input_unchanged(predict, tmp_path, caplog):
    image = photo(30, 40)
    save(image, tmp_path / "p.png"), save_mask(np.zeros((30, 40), np.uint8), tmp_path / "p_mask.png")
    with caplog.at_level("INFO"):
        (out,) = predict(f"input={tmp_path / 'p.png'}", f"output={tmp_path / 'o.png'}").written
    assert np.array_equal(read_image_rgb(out), image)
    assert "no hole pixels" in caplog.text


def test_all_one_mask_and_large_photo_resize(predict, tmp_path):
    image = photo(300, 200)
    save(image, tmp_path / "p.png"), save_mask(np.ones((300, 200), np.uint8), tmp_path / "p_mask.png")
    (out,) = predict(f"input={tmp_path / 'p.png'}", "max_side=64", f"output={tmp_path / 'o.png'}").written
    assert read_image_rgb(out).shape == (300, 200, 3)


def test_size_mismatch_names_both_files_and_sizes(predict, tmp_path):
    save(photo(30, 40), tmp_path / "p.png"), save_mask(np.ones((31, 40), np.uint8), tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"p.png is 40x30 \(WxH\) but its mask .*m.png is 40x31"):
        predict(
            f"input={tmp_path / 'p.png'}", f"mask_path={tmp_path / 'm.png'}", f"output={tmp_path / 'o.png'}"
        )


def test_unwritable_output_and_bad_extension_fail_before_work(predict, tmp_path):
    save(photo(20, 20), tmp_path / "p.png"), save_mask(np.ones((20, 20), np.uint8), tmp_path / "p_mask.png")
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(OutputError, match="cannot create the output folder .*file"):
        predict(f"input={tmp_path / 'p.png'}", f"output={tmp_path / 'file' / 'o.png'}")
    with pytest.raises(ValueError, match="unknown image extension"):
        predict(f"input={tmp_path / 'p.png'}", f"output={tmp_path / 'o.xyz'}")
    with pytest.raises(OutputError, match="overwrite an input"):
        predict(f"input={tmp_path / 'p.png'}", f"output={tmp_path / 'p.png'}")


def test_default_weights_when_no_ckpt_path(tmp_path, weights, monkeypatch):
    image = photo(24, 24)
    save(image, tmp_path / "p.png"), save_mask(np.ones((24, 24), np.uint8), tmp_path / "p_mask.png")
    overrides = [f"input={tmp_path / 'p.png'}", f"output={tmp_path / 'o.png'}", "progress=false"]
    monkeypatch.setattr(checkpoint, "DEFAULT_WEIGHTS", tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        run(compose_config(tmp_path, overrides, config_name="predict"))
    monkeypatch.setattr(checkpoint, "DEFAULT_WEIGHTS", weights)
    (out,) = run(compose_config(tmp_path, overrides, config_name="predict")).written
    assert out.is_file()
    GlobalHydra.instance().clear()


def test_cli_bad_model_file_is_one_clear_line(tmp_path):
    (tmp_path / "old.pt").write_bytes(b"not a model")
    save(photo(20, 20), tmp_path / "p.png"), save_mask(np.ones((20, 20), np.uint8), tmp_path / "p_mask.png")
    result = subprocess.run(
        [sys.executable, "-m", "inpainting.predict", f"ckpt_path={tmp_path / 'old.pt'}"]
        + [f"input={tmp_path / 'p.png'}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        cwd=CONF_DIR.parent,
        timeout=300,
    )
    assert result.returncode == 1
    text = result.stdout + result.stderr
    assert "old.pt" in text and "Traceback" not in text
