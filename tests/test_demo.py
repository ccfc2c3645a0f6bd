"""The demo's logic without a browser: editor values -> arrays, validation, running, config defaults."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra

gr = pytest.importorskip("gradio", reason="the demo needs gradio (pip install 'inpainting[demo]')")

from inpainting.demo import cli_aliases  # noqa: E402
from inpainting.inference import Inpainter, checkpoint  # noqa: E402
from inpainting.inference.demo_app import DemoRunner, check_image, create, editor_to_arrays  # noqa: E402
from inpainting.inference.inpainter import from_module  # noqa: E402
from tests.conftest import compose_config  # noqa: E402
from tests.test_inference import photo, tiny_generator_file, tiny_net  # noqa: E402


def layer(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A transparent RGBA brush layer with an opaque magenta stroke in ``box``."""
    out = np.zeros((height, width, 4), np.uint8)
    top, left, bottom, right = box
    out[top:bottom, left:right] = (255, 0, 255, 255)
    return out


@pytest.fixture(scope="module")
def runner() -> DemoRunner:
    return DemoRunner(Inpainter(from_module(tiny_net())), max_pixels=100_000)


def test_analytics_are_off():
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_editor_value_to_photo_and_mask():
    rgb = photo(30, 40)
    background = np.dstack([rgb, np.full((30, 40), 255, np.uint8)])
    background[0, 0, 3] = 0  # a transparent pixel shows white, as a viewer shows it
    value = {
        "background": background,
        "layers": [layer(30, 40, (5, 5, 10, 20)), layer(30, 40, (20, 30, 25, 35))],
    }
    image, mask = editor_to_arrays(value)
    assert image.dtype == np.uint8 and image.shape == (30, 40, 3)
    assert image[0, 0].tolist() == [255, 255, 255] and np.array_equal(image[1:], rgb[1:])
    assert mask.sum() == 5 * 15 + 5 * 5 and mask[7, 10] == 1 and mask[22, 32] == 1
    grey_image, grey_mask = editor_to_arrays({"background": rgb[..., 0], "layers": []})
    assert grey_image.shape == (30, 40, 3) and grey_mask.sum() == 0


def test_run_fills_only_painted_pixels(runner):
    rgb = photo(61, 83)
    strokes = layer(61, 83, (10, 10, 30, 50))
    result, message = runner.run({"background": rgb, "layers": [strokes], "composite": rgb})
    painted = strokes[..., 3] > 0
    assert result.shape == rgb.shape
    assert np.array_equal(result[~painted], rgb[~painted]) and not np.array_equal(
        result[painted], rgb[painted]
    )
    assert "Filled 800 pixels" in message


def test_nothing_painted_returns_the_photo(runner):
    rgb = photo(20, 20)
    result, message = runner.run({"background": rgb, "layers": [np.zeros((20, 20, 4), np.uint8)]})
    assert np.array_equal(result, rgb) and "unchanged" in message


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (None, "Upload a photo first"),
        ({"background": None, "layers": []}, "Upload a photo first"),
        ({"background": np.zeros((4, 4, 2), np.uint8), "layers": []}, "not a picture"),
        (
            {"background": np.zeros((10, 10, 3), np.uint8), "layers": [np.zeros((9, 10, 4), np.uint8)]},
            "layer is 10x9",
        ),
        ({"background": np.zeros((400, 400, 3), np.uint8), "layers": []}, "160,000 pixels.*100,000"),
    ],
)
def test_bad_values_raise_clear_gradio_errors(runner, value, match):
    with pytest.raises(gr.Error, match=match):
        runner.run(value)


def test_open_file_rejects_non_images_and_oversized_photos(runner, tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(gr.Error, match="notes.png is not a picture.*not a recognised image format"):
        runner.load_file(str(tmp_path / "notes.png"))
    from PIL import Image

    Image.fromarray(photo(20, 30)).save(tmp_path / "ok.png")
    value = runner.load_file(str(tmp_path / "ok.png"))
    assert np.array_equal(value["background"], photo(20, 30)) and value["layers"] == []
    with pytest.raises(gr.Error, match="limit"):
        check_image(np.zeros((1000, 1000, 3), np.uint8), 999_999)
    check_image(np.zeros((1000, 1000, 3), np.uint8), 0)  # 0 = no limit


def test_cli_aliases_for_host_and_port():
    argv = ["demo", "--host", "0.0.0.0", "--port=8000", "ckpt_path=x.pt"]
    assert cli_aliases(argv) == ["demo", "host=0.0.0.0", "port=8000", "ckpt_path=x.pt"]


def test_config_defaults_to_localhost_and_default_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "DEFAULT_WEIGHTS", tiny_generator_file(tmp_path / "default.pt"))
    cfg = compose_config(tmp_path, [], config_name="demo")
    assert cfg.host == "127.0.0.1" and cfg.ckpt_path is None
    app, model = create(cfg)
    assert isinstance(app, gr.Blocks) and model.path == tmp_path / "default.pt"
    monkeypatch.setattr(checkpoint, "DEFAULT_WEIGHTS", tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        create(cfg)
    GlobalHydra.instance().clear()
