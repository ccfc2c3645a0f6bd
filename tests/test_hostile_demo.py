"""The demo against hostile clients, through a real local server and gradio's own client: pictures over the
pixel limit are refused from their header (never decoded), jobs run one at a time, failures always reach the
client with a message and the console with one line, and calls leave no temporary folder behind."""

from __future__ import annotations

import logging
import socket
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

gr = pytest.importorskip("gradio", reason="the demo needs gradio (pip install 'inpainting[demo]')")
gradio_client = pytest.importorskip("gradio_client")

from gradio_client import handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from inpainting.inference import Inpainter  # noqa: E402
from inpainting.inference.demo_app import DemoRunner, build_app, launch  # noqa: E402
from inpainting.inference.inpainter import from_module  # noqa: E402
from tests.test_inference import photo, tiny_net  # noqa: E402

MAX_PIXELS = 10_000
LIMIT = "more than this demo's limit of 10,000"


def huge_png(path: Path, width: int = 12_000, height: int = 12_000) -> Path:
    """A PNG whose header says ``width x height`` but whose data is one pixel: decoding it fails (truncated),
    so a refusal naming the size and the limit proves that only the header was read."""
    buffer = BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def write_pair(folder: Path, seed: int = 0, height: int = 40, width: int = 52) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    hole = np.zeros((height, width), np.uint8)
    hole[8:20, 10:30] = 255
    Image.fromarray(photo(height, width, seed)).save(folder / "photo.png")
    Image.fromarray(hole).save(folder / "mask.png")
    return folder / "photo.png", folder / "mask.png"


class Probe:
    """An inpainter that counts how many calls run at once, and can be told to fail."""

    def __init__(self, inner: Inpainter, delay: float = 0.0) -> None:
        self.inner, self.delay = inner, delay
        self.active = self.peak = 0
        self.fail: BaseException | None = None
        self.lock = threading.Lock()

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
            return self.inner(image, mask)
        finally:
            with self.lock:
                self.active -= 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(
    runner: DemoRunner, downloads: Path | bool, block: bool = False
) -> tuple[gr.Blocks, gradio_client.Client]:
    """Launch the demo on a free port of 127.0.0.1 and connect gradio's client (``downloads=False``: results
    stay on the server, the client gets their server path). ``block=True`` launches as
    ``python -m inpainting.demo`` does, in a thread that ``app.close()`` ends."""
    app = build_app(runner)
    port = free_port()
    cfg = OmegaConf.create({"host": "127.0.0.1", "port": port, "max_upload_mb": 1})
    if block:
        threading.Thread(target=launch, args=(app, cfg, True), daemon=True).start()
        deadline = time.monotonic() + 60
        while not app.is_running and time.monotonic() < deadline:
            time.sleep(0.2)
    else:
        launch(app, cfg, block=False)
    downloads = str(downloads) if isinstance(downloads, Path) else downloads
    return app, gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=downloads)


@pytest.fixture(scope="module")
def probe() -> Probe:
    return Probe(Inpainter(from_module(tiny_net())))


@pytest.fixture(scope="module")
def client(probe, tmp_path_factory) -> Iterator[gradio_client.Client]:
    app, client = serve(DemoRunner(probe, MAX_PIXELS), tmp_path_factory.mktemp("downloads"))
    try:
        yield client
    finally:
        app.close()


def editor_value(background: Path, layer: Path | None = None) -> dict:
    return {
        "background": handle_file(str(background)),
        "layers": [handle_file(str(layer))] if layer else [],
        "composite": None,
    }


@pytest.mark.parametrize("huge", ["image", "mask"])
def test_api_refuses_a_huge_image_or_mask_from_its_header(client, tmp_path, huge, capfd, caplog):
    image, mask = write_pair(tmp_path)
    huge_png(image if huge == "image" else mask)
    caplog.set_level(logging.WARNING, logger="inpainting.inference.demo_app")
    with pytest.raises(AppError) as refused:
        client.predict(handle_file(str(image)), handle_file(str(mask)), api_name="/inpaint")
    name = "image photo.png" if huge == "image" else "mask mask.png"
    assert f"The {name} is 12000x12000 = 144,000,000 pixels, {LIMIT}" in refused.value.message
    # the console: one line, no traceback for an error the client already has
    assert [r.getMessage() for r in caplog.records] == [f"refused: {refused.value.message}"]
    assert "Traceback" not in "".join(capfd.readouterr())


def test_page_refuses_huge_uploads_from_their_header(client, tmp_path):
    image, mask = write_pair(tmp_path)
    layer = tmp_path / "layer.png"
    Image.fromarray(np.zeros((40, 52, 4), np.uint8)).save(layer)
    huge = huge_png(tmp_path / "huge.png")
    for value in (editor_value(huge), editor_value(image, huge)):  # the photo, then a brush layer
        for endpoint in ("/check_upload", "/run"):
            with pytest.raises(AppError, match=f"12000x12000 = 144,000,000 pixels, {LIMIT}"):
                client.predict(value, api_name=endpoint)
    with pytest.raises(AppError, match=f"huge.png is 12000x12000 = 144,000,000 pixels, {LIMIT}"):
        client.predict(handle_file(str(huge)), api_name="/load_file")  # 'Open a file'
    result, message = client.predict(editor_value(image, layer), api_name="/run")
    assert "Nothing painted" in message  # the same page still serves a picture within the limit


def test_an_unexpected_failure_reaches_the_client_with_a_message(client, probe, tmp_path):
    image, mask = write_pair(tmp_path)
    probe.fail = MemoryError()  # str() is empty: gradio alone would send {"error": ""}
    try:
        with pytest.raises(AppError) as failed:
            client.predict(handle_file(str(image)), handle_file(str(mask)), api_name="/inpaint")
    finally:
        probe.fail = None
    assert failed.value.message.startswith("MemoryError: no details. The demo could not process this request")


def test_jobs_run_one_at_a_time_across_page_and_api(client, probe, tmp_path):
    pairs = [write_pair(tmp_path / str(i), seed=i) for i in range(4)]
    layer = tmp_path / "layer.png"
    strokes = np.zeros((40, 52, 4), np.uint8)
    strokes[5:15, 5:25] = 255
    Image.fromarray(strokes).save(layer)
    probe.peak, probe.delay = 0, 0.3
    try:
        jobs = [
            client.submit(handle_file(str(i)), handle_file(str(m)), api_name="/inpaint") for i, m in pairs
        ]
        jobs += [client.submit(editor_value(pairs[0][0], layer), api_name="/run") for _ in range(2)]
        results = [job.result(timeout=60) for job in jobs]
    finally:
        probe.delay = 0.0
    assert probe.peak == 1
    assert all(Path(path).exists() for path in results[:4])
    assert all(message.startswith("Filled 200 pixels") for _, message in results[4:])


def test_calls_leave_no_folder_behind_and_the_cache_is_emptied(tmp_path, monkeypatch, capfd):
    """The demo writes its result where gradio keeps its own files (its cache, the temp dir's ``gradio``),
    and ``delete_cache`` empties it on shutdown. The client does not download (gradio_client leaves an empty
    folder in the temp dir for every download it makes)."""
    temp = tmp_path / "tmp"
    cache = temp / "gradio"
    cache.mkdir(parents=True)
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    app, client = serve(
        DemoRunner(Inpainter(from_module(tiny_net())), MAX_PIXELS), downloads=False, block=True
    )
    try:
        for seed in range(3):
            image, mask = write_pair(tmp_path / "inputs" / str(seed), seed=seed)
            out = client.predict(handle_file(str(image)), handle_file(str(mask)), api_name="/inpaint")
            assert Path(out["path"]).name == "photo_filled.png" and Path(out["path"]).parent.parent == cache
        assert [p.name for p in temp.iterdir()] == ["gradio"]
        assert "share=True" not in "".join(
            capfd.readouterr()
        )  # gradio's hint about code the user never calls
    finally:
        app.close()
    # uploads and results are deleted on shutdown; what stays is gradio's own empty placeholder per File input
    assert [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size] == []
