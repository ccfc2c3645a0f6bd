"""The demo page end to end in real headless Chromium: upload, brush a stroke, run, check the result.

Needs Debian's Chromium (``apt-get install -y chromium``, /usr/bin/chromium) and PyPI's ``playwright`` (never
``playwright install``: it would download a browser). The demo runs as ``python -m inpainting.demo`` in a
subprocess, on a free port of 127.0.0.1, with a tiny untrained model.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import CONF_DIR
from tests.test_inference import photo, tiny_generator_file

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MAX_PIXELS = 20_000  # the 128x96 photo passes, a 200x150 one is refused

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is missing (pip install playwright)"
)
pytest.importorskip("gradio", reason="gradio is missing (pip install 'inpainting[demo]')")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo exited with status {process.returncode}: {process.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the demo did not answer on {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("demo")
    weights = tiny_generator_file(folder / "tiny.pt")
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "inpainting.demo", f"ckpt_path={weights}", "--port", str(port)]
        + [f"max_pixels={MAX_PIXELS}", f"hydra.run.dir={folder / 'run'}"],
        cwd=CONF_DIR.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(server, wait_until="networkidle")
    yield page
    context.close()


def toast_text(page, timeout: float = 30_000) -> str:
    toast = page.locator(".toast-body").first
    toast.wait_for(state="visible", timeout=timeout)
    return toast.inner_text()


def test_upload_brush_run_and_download(page, tmp_path):
    image = photo(96, 128)
    Image.fromarray(image).save(tmp_path / "photo.png")
    page.locator("#editor input[type=file]").set_input_files(str(tmp_path / "photo.png"))
    canvas = page.locator("#editor canvas").first
    canvas.wait_for(state="visible")
    page.wait_for_timeout(500)  # let the editor draw the background before painting on it
    page.get_by_role("button", name="Brush", exact=True).click()

    box = canvas.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5
    page.mouse.move(x0, y0)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x0 + step * 10, y0 + step * 3)
    page.mouse.up()

    page.locator("#run").click()
    result = page.locator("#result img")
    result.wait_for(state="visible", timeout=120_000)
    assert "Filled" in page.locator("#status").inner_text()
    response = page.request.get(result.get_attribute("src"))
    assert response.ok
    out = np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))

    assert out.shape == image.shape
    changed = (out != image).any(axis=2)
    # the stroke is about 100 x 30 screen pixels over a 3x-zoomed 128 x 96 photo: a band of a few hundred pixels
    assert 100 < changed.sum() < 0.5 * changed.size
    rows, cols = np.nonzero(changed)
    assert rows.min() > 10 and cols.min() > 20, "only the brushed region may change"
    # everything else came back bit-identical through upload, canvas, server and PNG download
    assert np.array_equal(out[~changed], image[~changed])


def test_non_image_and_oversized_uploads_show_a_clear_message(page, tmp_path):
    (tmp_path / "notes.txt").write_text("certainly not a picture")
    with page.expect_file_chooser() as chooser:
        page.locator("#open").click()
    chooser.value.set_files(str(tmp_path / "notes.txt"))
    assert "notes.txt is not a picture" in toast_text(page)

    page.reload(wait_until="networkidle")
    Image.fromarray(photo(150, 200)).save(tmp_path / "big.png")
    page.locator("#editor input[type=file]").set_input_files(str(tmp_path / "big.png"))
    assert "30,000 pixels" in toast_text(page) and f"{MAX_PIXELS:,}" in toast_text(page)

    page.reload(wait_until="networkidle")
    page.locator("#run").click()
    assert "Upload a photo first" in toast_text(page)
