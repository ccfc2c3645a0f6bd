"""`python -m inpainting.predict` against inputs that used to overwrite files, read masks as empty or eat memory."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from inpainting.data.images import ImageReadError, read_image_rgb, read_mask
from inpainting.data.predict_plan import OutputError
from inpainting.inference.predict_runner import run
from tests.conftest import compose_config, run_cli
from tests.test_inference import holes, photo, tiny_generator_file
from tests.test_predict import save, save_mask


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return tiny_generator_file(tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.fixture
def predict(tmp_path, weights):
    """``predict(*overrides)``: inpainting.predict in-process (faster) for the steps around a command-line run."""
    yield lambda *overrides: run(
        compose_config(
            tmp_path, [f"ckpt_path={weights}", "progress=false", *overrides], config_name="predict"
        )
    )
    GlobalHydra.instance().clear()


def predict_cli(tmp_path: Path, weights: Path, *overrides: str):
    """``python -m inpainting.predict`` as a user runs it; returns (exit status, stdout + stderr)."""
    args = [f"ckpt_path={weights}", "progress=false", f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    result = run_cli(args, cwd=tmp_path, entry="inpainting.predict")
    return result.returncode, result.stdout + result.stderr


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def huge_png(path: Path, width: int, height: int) -> Path:
    """A few-byte PNG whose header claims ``width`` x ``height`` (the pixel data is a 1x1 image's)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:33] = ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(bytes(data))
    return path


# ------------------------------------------------------------------------------------------------------------
# 1. no output replaces an input, another output or a file the run did not create


def test_output_folder_inside_input_keeps_a_file_already_there(tmp_path, weights):
    nest = tmp_path / "nest"
    save(photo(24, 24), nest / "a.png"), save_mask(holes(24, 24, [(4, 4, 12, 12)]), nest / "a_mask.png")
    save(photo(24, 24, seed=1), nest / "sub" / "a.png")  # the user's own file, where a.png's result would go
    before = snapshot(nest)
    status, text = predict_cli(tmp_path, weights, f"input={nest}", f"output={nest / 'sub'}")
    assert status == 1, text
    assert f"output {nest / 'sub' / 'a.png'} (the result for {nest / 'a.png'}) already exists" in text
    assert "Traceback" not in text and "no mask" not in text  # sub/a.png was not taken for an input
    assert snapshot(nest) == before


def test_two_inputs_with_one_output_name_stop_before_writing(tmp_path, weights):
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("x.jpg", "x.png"):
        save(photo(24, 24), src / name)
    save_mask(holes(24, 24, [(4, 4, 12, 12)]), tmp_path / "masks" / "x.png")  # the mask of both
    status, text = predict_cli(
        tmp_path, weights, f"input={src}", f"mask={tmp_path / 'masks'}", f"output={out}"
    )
    assert status == 1, text
    assert f"{src / 'x.jpg'} and {src / 'x.png'} would both be written to {out / 'x.png'}" in text
    assert not out.exists()


def test_rerun_into_an_output_folder_inside_the_input_needs_overwrite(tmp_path, weights, predict):
    nest = tmp_path / "nest"
    image, mask = photo(24, 24), holes(24, 24, [(4, 4, 12, 12)])
    save(image, nest / "a.png"), save_mask(mask, nest / "a_mask.png")
    first = [f"input={nest}", f"output={nest / 'out'}"]
    (result,) = predict(*first).written
    result.write_bytes(b"edited by the user since")
    status, text = predict_cli(tmp_path, weights, *first)
    assert status == 1 and "already exists; pass overwrite=true" in text, text
    assert result.read_bytes() == b"edited by the user since"
    assert predict(*first, "overwrite=true").written == [result]  # out/a.png was not read as an input
    assert np.array_equal(read_image_rgb(result)[mask == 0], image[mask == 0])
    assert sorted(snapshot(nest)) == ["a.png", "a_mask.png", "out/a.png"]
    # overwrite=true never replaces an input: the input's own folder as the output folder
    with pytest.raises(OutputError, match=f"would overwrite an input file, {nest / 'a.png'}"):
        predict(f"input={nest / 'a.png'}", f"output={nest}", "overwrite=true")
    assert np.array_equal(read_image_rgb(nest / "a.png"), image)


# ------------------------------------------------------------------------------------------------------------
# 2. 0/1 masks are masks; an empty mask is a WARNING


def test_zero_one_mask_fills_and_an_empty_mask_warns(tmp_path, weights):
    src, out = tmp_path / "in", tmp_path / "out"
    image, mask = photo(24, 24), holes(24, 24, [(4, 4, 12, 12)])
    save(image, src / "a.png"), save(mask, src / "a_mask.png")  # values 0 and 1, as numpy saves them
    save(image, src / "b.png"), save(np.zeros((24, 24), np.uint8), src / "b_mask.png")
    status, text = predict_cli(tmp_path, weights, f"input={src}", f"output={out}")
    assert status == 0, text
    assert not np.array_equal(read_image_rgb(out / "a.png")[mask == 1], image[mask == 1])
    assert np.array_equal(read_image_rgb(out / "b.png"), image)
    (line,) = [line for line in text.splitlines() if "no hole pixels" in line]
    assert "WARNING" in line and "b_mask.png" in line


def test_read_mask_zero_one_rule(tmp_path):
    ones = np.array([[0, 1, 1, 0]])
    Image.fromarray(ones.astype(np.uint8)).save(tmp_path / "u8.png")
    Image.fromarray(ones.astype(np.uint16)).save(tmp_path / "u16.png")
    Image.fromarray(np.array([[0, 1, 2, 200]], np.uint8)).save(tmp_path / "grey.png")
    assert read_mask(tmp_path / "u8.png").tolist() == ones.tolist()
    assert read_mask(tmp_path / "u16.png", threshold=200).tolist() == ones.tolist()
    assert read_mask(tmp_path / "grey.png").tolist() == [[0, 0, 0, 1]]  # a pixel above 1: thresholded


# ------------------------------------------------------------------------------------------------------------
# 3. sizes from the header, before decoding; a size mismatch said once


def test_huge_header_is_one_line_before_decoding(tmp_path, weights):
    save(photo(24, 24), tmp_path / "p.png")
    big = huge_png(tmp_path / "p_mask.png", 10_000, 10_000)  # over Pillow's limit but under its own error
    status, text = predict_cli(
        tmp_path, weights, f"input={tmp_path / 'p.png'}", f"output={tmp_path / 'o.png'}"
    )
    assert status == 1, text
    assert f"{big}: its header says 10000x10000 pixels (100.0 megapixels), over the limit of 89.5" in text
    assert "Traceback" not in text and "truncated" not in text and not (tmp_path / "o.png").exists()
    for reader in (read_image_rgb, read_mask):  # what evaluate and the datasets read through
        with pytest.raises(ImageReadError, match="10000x10000 pixels"):
            reader(big)
    with pytest.raises(ImageReadError, match=r"huge.png: too large .* exceeds limit"):
        read_image_rgb(huge_png(tmp_path / "huge.png", 100_000, 100_000))


def test_size_mismatch_reported_once(tmp_path, weights):
    save(photo(30, 40), tmp_path / "p.png"), save_mask(np.ones((31, 40), np.uint8), tmp_path / "m.png")
    args = [f"input={tmp_path / 'p.png'}", f"mask={tmp_path / 'm.png'}", f"output={tmp_path / 'o.png'}"]
    status, text = predict_cli(tmp_path, weights, *args)
    assert status == 1, text
    assert text.count("but its mask") == 1 and "WARNING" not in text, text
