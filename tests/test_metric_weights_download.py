"""Standard-metric weights fetched on first use: checksum kept or refused, offline message, opt-out; all against a
local HTTP server on 127.0.0.1 (the real addresses in DOWNLOADS are never contacted)."""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from inpainting.evaluation import standard
from inpainting.evaluation.lpips import BACKBONE_FILES, backbone_features
from inpainting.evaluation.standard import (
    DOWNLOADS,
    INCEPTION_FILES,
    MissingWeightsError,
    WeightSource,
    load_standard_metrics,
)

ALEX = BACKBONE_FILES["alex"]


class Server:
    """Serves a folder over HTTP from a thread and counts the requests it answered."""

    def __init__(self, folder: Path) -> None:
        self.requests = 0
        outer = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest's output clean
                pass

            def do_GET(self) -> None:
                outer.requests += 1
                super().do_GET()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch.hub cache, no weights folder, downloads allowed (conftest forbids them elsewhere)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for name in ("INPAINTING_METRIC_WEIGHTS", *standard.OFFLINE_ENV):
        monkeypatch.delenv(name, raising=False)
    return Path(torch.hub.get_dir()) / "checkpoints"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A server and the AlexNet backbone file it serves (random weights, torchvision's key layout)."""
    folder = tmp_path / "served"
    folder.mkdir()
    torch.manual_seed(0)
    state = backbone_features("alex").state_dict()
    torch.save({f"features.{k}": v for k, v in state.items()}, folder / ALEX)
    server = Server(folder)
    yield server, folder / ALEX
    server.close()


def only_alex(monkeypatch: pytest.MonkeyPatch, url: str, prefix: str) -> None:
    """The checksum table with the AlexNet file at ``url``; the VGG16 file has no published checksum."""
    monkeypatch.setattr(standard, "DOWNLOADS", {ALEX: WeightSource(url, prefix)})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checksum_table_prefixes_are_the_publishers_file_name_suffixes():
    """torch.hub's naming: ``NAME-<sha256 prefix>.ext``; the table checks exactly that prefix at that address."""
    assert set(DOWNLOADS) == {INCEPTION_FILES[1], BACKBONE_FILES["alex"], BACKBONE_FILES["vgg"]}
    for name, source in DOWNLOADS.items():
        assert source.url.startswith("https://") and source.url.rsplit("/", 1)[1] == name
        assert re.fullmatch(r"[0-9a-f]{8}", source.sha256_prefix)
        assert name.rsplit(".", 1)[0].endswith("-" + source.sha256_prefix)


def test_correct_checksum_is_kept_and_used(hub, served, monkeypatch, caplog):
    server, file = served
    only_alex(monkeypatch, f"{server.url}/{ALEX}", sha256(file)[:8])
    with caplog.at_level(logging.INFO, logger=standard.__name__):
        metrics = load_standard_metrics(False, "auto")
    assert set(metrics.lpips) == {"alex"} and metrics.sources["lpips_alex"] == str(hub / ALEX)
    assert (hub / ALEX).read_bytes() == file.read_bytes() and sorted(p.name for p in hub.iterdir()) == [ALEX]
    x = torch.rand(2, 3, 32, 32)
    assert torch.all(metrics.lpips["alex"](x, x.flip(-1)) > 0)  # the downloaded network runs
    # the VGG16 file is not in the table: manual message, nothing fetched for it
    assert "vgg16-397923af.pth (not found)" in caplog.text and "no published checksum" in caplog.text
    assert server.requests == 1
    load_standard_metrics(False, "auto")  # found in the cache now: no second request
    assert server.requests == 1


def test_wrong_checksum_is_refused_with_one_line_and_nothing_kept(hub, served, monkeypatch):
    server, file = served
    wrong = "0" * 8 if not sha256(file).startswith("0" * 8) else "f" * 8
    only_alex(monkeypatch, f"{server.url}/{ALEX}", wrong)
    for mode in ("auto", True):  # bytes other than the published ones stop the run even with lpips=auto
        with pytest.raises(MissingWeightsError) as info:
            load_standard_metrics(False, mode)
        message = str(info.value)
        assert "\n" not in message and wrong in message and "nothing was kept" in message
    assert server.requests == 2
    assert not hub.exists() or list(hub.iterdir()) == []  # no file, no .partial left behind


def test_server_down_gives_the_offline_message(hub, monkeypatch, caplog):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    only_alex(monkeypatch, f"http://127.0.0.1:{port}/{ALEX}", "7be5be79")
    with caplog.at_level(logging.INFO, logger=standard.__name__):
        assert load_standard_metrics(False, "auto").empty
    assert f"{ALEX} (not found): put it in" in caplog.text and "download failed:" in caplog.text
    with pytest.raises(MissingWeightsError) as info:
        load_standard_metrics(False, True)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(
        rf"{ALEX} \(not found\): put it in .*; download failed: http://127\.0\.0\.1:{port}/", message
    )


@pytest.mark.parametrize(
    ("env", "download", "why"),
    [
        ({"INPAINTING_OFFLINE": "1"}, True, "downloads off ($INPAINTING_OFFLINE=1)"),
        ({"HF_HUB_OFFLINE": "1"}, True, "downloads off ($HF_HUB_OFFLINE=1)"),
        ({}, False, "downloads off (download_weights=false)"),
    ],
)
def test_offline_variables_and_the_flag_skip_the_download(hub, served, monkeypatch, env, download, why):
    server, file = served
    only_alex(monkeypatch, f"{server.url}/{ALEX}", sha256(file)[:8])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(MissingWeightsError) as info:
        load_standard_metrics(False, True, download=download)
    assert str(info.value).endswith(why) and server.requests == 0 and not (hub / ALEX).exists()


def test_download_weights_option_reaches_the_loader(tmp_path, image_folder, hub, served, monkeypatch):
    """Through the evaluate config: download_weights=false keeps the manual message, true fetches the file."""
    from hydra.core.global_hydra import GlobalHydra

    from inpainting.evaluation.runner import run
    from tests.conftest import compose_config

    server, file = served
    only_alex(monkeypatch, f"{server.url}/{ALEX}", sha256(file)[:8])
    common = [
        "data=folder",
        f"data.root={image_folder}",
        "data.image_size=32",
        "methods=[telea]",
        "workers=1",
    ]
    common += ["mask_sets=[thick]", "masks_per_image=1", "max_images=2", "vgg_weights=null", "fid=false"]
    try:
        with pytest.raises(MissingWeightsError, match=r"download_weights=false"):
            run(
                compose_config(
                    tmp_path, [*common, "lpips=true", "download_weights=false"], config_name="evaluate"
                )
            )
        assert server.requests == 0
        GlobalHydra.instance().clear()
        files = run(compose_config(tmp_path, [*common, "lpips=auto"], config_name="evaluate"))
    finally:
        GlobalHydra.instance().clear()
    assert server.requests == 1 and (hub / ALEX).is_file()
    assert "lpips_alex" in files["results"].read_text().splitlines()[0]
