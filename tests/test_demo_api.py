"""The demo's HTTP API (README "Demo"): image + mask files in, PNG out, with the page's size limits; called through
a real local server with gradio's own client, as a script would."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

gr = pytest.importorskip("gradio", reason="the demo needs gradio (pip install 'inpainting[demo]')")
gradio_client = pytest.importorskip("gradio_client")

from inpainting.inference import Inpainter  # noqa: E402
from inpainting.inference.demo_app import DemoRunner, build_app, launch  # noqa: E402
from inpainting.inference.inpainter import from_module  # noqa: E402
from tests.test_inference import photo, tiny_net  # noqa: E402


def _write(tmp_path: Path, height: int = 40, width: int = 52) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rgb = photo(height, width)
    hole = np.zeros((height, width), np.uint8)
    hole[8:20, 10:30] = 255
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    Image.fromarray(hole).save(tmp_path / "mask.png")
    return tmp_path / "photo.png", tmp_path / "mask.png", rgb, hole > 0


@pytest.fixture(scope="module")
def runner() -> DemoRunner:
    return DemoRunner(Inpainter(from_module(tiny_net())), max_pixels=10_000)


def test_inpaint_files_keeps_known_pixels_and_fills_the_hole(runner, tmp_path):
    image, mask, rgb, hole = _write(tmp_path)
    out = np.asarray(Image.open(runner.inpaint_files(str(image), str(mask))))
    assert out.shape == rgb.shape
    assert np.array_equal(out[~hole], rgb[~hole])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("too_big", "more than this demo's limit"),
        ("wrong_size", "must be the same size"),
        ("not_image", "photo.png"),
    ],
)
def test_inpaint_files_refuses_with_a_message(runner, tmp_path, case, message):
    image, mask, _, _ = _write(tmp_path, *((120, 100) if case == "too_big" else (40, 52)))
    if case == "wrong_size":
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(mask)
    if case == "not_image":
        image.write_bytes(b"not a picture")
    with pytest.raises(gr.Error, match=message):
        runner.inpaint_files(str(image), str(mask))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_http_api_round_trip_with_gradio_client(runner, tmp_path):
    image, mask, rgb, hole = _write(tmp_path)
    cfg = OmegaConf.create({"host": "127.0.0.1", "port": _free_port(), "max_upload_mb": 1})
    app = build_app(runner)
    launch(app, cfg, block=False)
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{cfg.port}/", verbose=False)
        api = client.view_api(print_info=False, return_format="dict")
        assert list(api["named_endpoints"]) == ["/inpaint"]  # the page's own events are not advertised
        result = client.predict(
            gradio_client.handle_file(str(image)), gradio_client.handle_file(str(mask)), api_name="/inpaint"
        )
        out = np.asarray(Image.open(result))
        assert out.shape == rgb.shape and np.array_equal(out[~hole], rgb[~hole])
    finally:
        app.close()
