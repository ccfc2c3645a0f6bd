"""What a hostile tester feeds ``python -m inpainting.train``: crafted resume state, folders it did not create,
divergent learning rates, absurd worker counts, unquoted paths, full disks, unreadable test images, the wrong
kind of checkpoint, and two runs sharing one run dir. Each gets one clear line (or is ignored), never a crash
that takes the user's files or the previous checkpoint with it."""

from __future__ import annotations

import csv
import errno
import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from torch.utils.data import DataLoader

from inpainting.cli.errors import is_user_error, user_error_message
from inpainting.data.datamodule import available_cores
from inpainting.data.datasets import InpaintingDataset
from inpainting.data.masks import BoxMask
from inpainting.errors import ConfigError
from inpainting.inference.checkpoint import CheckpointError, save_generator
from inpainting.training.checkpoint_io import CheckpointWriteError
from inpainting.training.fit import train
from inpainting.training.guards import NonFiniteTrainingError
from tests.conftest import TINY_OVERRIDES, run_cli, write_tiny_images

# -- 1. resume state: no path from the checkpoint outside this run's checkpoint dir ---------------------------


@pytest.fixture
def http_requests() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server in a thread: ``(base url, paths requested)``."""
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            requested.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requested
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("best", ["url", "outside"])
def test_resume_ignores_checkpoint_paths_outside_the_run(best, tiny_train_config, tmp_path, http_requests):
    base_url, requested = http_requests
    first = tiny_train_config("test=false")
    train(first)
    outside = tmp_path / "elsewhere" / "victim.ckpt"  # not a checkpoint: loading it for the test would fail
    outside.parent.mkdir()
    outside.write_bytes(b"the user's file")
    url = f"{base_url}/x"
    resumed_dir = tmp_path / "resumed"
    checkpoint = torch.load(Path(first.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    for state in checkpoint["callbacks"].values():
        if "best_model_path" in state:  # every ModelCheckpoint: what Lightning restores as it is
            state.update(
                dirpath=str(resumed_dir / "checkpoints"),  # the resumed run's own: restores everything below
                best_model_path=url if best == "url" else str(outside),
                best_model_score=torch.tensor(1e9),  # nothing the run reaches replaces it as best
                best_k_models={url: torch.tensor(1e9), str(outside): torch.tensor(1e9)},
                kth_best_model_path=str(outside),
                last_model_path=str(outside),
            )
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)

    cfg = tiny_train_config(f"ckpt_path={crafted}", "trainer.max_steps=4")
    with open_dict(cfg):
        cfg.paths.output_dir = str(resumed_dir)
    metrics = train(cfg)

    assert requested == [], "the run fetched a URL named by the checkpoint"
    assert outside.read_bytes() == b"the user's file"
    assert metrics["test/psnr"] > 0  # tested this run's own best
    assert list((resumed_dir / "checkpoints").glob("best-step*.ckpt"))


# -- 2. a config error removes only what the run created ------------------------------------------------------


def test_a_config_error_leaves_a_folder_it_did_not_create_untouched(tmp_path, image_folder):
    folder = tmp_path / "some" / "folder"
    folder.mkdir(parents=True)
    (folder / "important.log").write_text("keep me\n")
    base = [*TINY_OVERRIDES, f"data.root={image_folder}", "logger=none", "data.image_size=0"]

    result = run_cli([*base, f"hydra.run.dir={folder}"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert sorted(p.name for p in folder.iterdir()) == ["important.log"]
    assert (folder / "important.log").read_text() == "keep me\n"

    new = tmp_path / "new" / "run"
    result = run_cli([*base, f"hydra.run.dir={new}"], cwd=tmp_path)
    assert result.returncode == 1
    assert not (tmp_path / "new").exists(), "a run dir (and parent) this run created is still cleaned"


def test_an_unset_mask_root_names_mask_root_and_leaves_no_run_dir(tmp_path, image_folder):
    run_dir = tmp_path / "run"
    result = run_cli(
        [*TINY_OVERRIDES, f"data.root={image_folder}", "mask=folder", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    errors = [line for line in output.splitlines() if "ERROR" in line and "HYDRA_FULL_ERROR" not in line]
    assert len(errors) == 1 and "mask.root" in errors[0] and "mask.root=" in errors[0], output[-2000:]
    assert "Traceback" not in output
    assert not run_dir.exists()


# -- 3. divergence --------------------------------------------------------------------------------------------


def test_a_huge_learning_rate_stops_before_saving_non_finite_weights(tiny_train_config):
    cfg = tiny_train_config("optimizer.lr=1e38", "callbacks.last_checkpoint.every_n_train_steps=1")
    with pytest.raises(NonFiniteTrainingError, match="optimizer.lr") as error:
        train(cfg)
    assert is_user_error(error.value) and "\n" not in user_error_message(error.value)
    for path in (Path(cfg.paths.output_dir) / "checkpoints").glob("*.ckpt"):
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values()), path


@pytest.mark.parametrize("lr", ["nan", "inf", "-1e-3", "0"])
def test_a_nonsense_learning_rate_is_a_config_error_before_anything_starts(lr, tiny_train_config):
    cfg = tiny_train_config(f"optimizer.lr={lr}")
    with pytest.raises(ConfigError, match=r"optimizer\.lr must be a finite positive number"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


# -- 4. workers -----------------------------------------------------------------------------------------------


def test_num_workers_is_capped_at_the_available_cores(tiny_train_config, caplog):
    cfg = tiny_train_config("data.num_workers=100000")
    with caplog.at_level(logging.WARNING, logger="inpainting.data"):
        datamodule = instantiate(cfg.data)
    assert datamodule.num_workers == available_cores()
    assert [r.getMessage() for r in caplog.records] == [
        f"data: num_workers=100000 capped at the {available_cores()} available CPU cores"
    ]


# -- 5. one line each -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "quoted"),
    [
        (["data.root=/my", "photos"], "'data.root=\"/my photos\"'"),
        (["data.root=/café/x"], "'data.root=\"/café/x\"'"),
    ],
)
def test_an_unquoted_path_gets_one_line_on_how_to_quote(args, quoted, tmp_path):
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and quoted in lines[0], result.stderr
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_disk_or_read_only_run_dir_is_one_line_and_keeps_last_ckpt(
    code, tiny_train_config, monkeypatch
):
    cfg = tiny_train_config("test=false", "callbacks.last_checkpoint.every_n_train_steps=1")
    real_save, calls = torch.save, []

    def save(obj: Any, file: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) > 1:  # the first last.ckpt is written, the next write fails
            file.write(b"half")
            raise OSError(code, "simulated")
        real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(CheckpointWriteError) as error:
        train(cfg)
    monkeypatch.setattr(torch, "save", real_save)
    message = user_error_message(error.value)
    assert is_user_error(error.value) and "\n" not in message and "last.ckpt" in message
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 1
    assert [p.name for p in folder.iterdir()] == ["last.ckpt"], "no temp file left behind"


def test_an_unreadable_test_image_is_reported_once_and_the_test_skipped(tiny_train_config, tmp_path, caplog):
    test_root = tmp_path / "test_images"
    test_root.mkdir()
    bad = test_root / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    cfg = tiny_train_config(f"data.test_root={test_root}")
    with caplog.at_level(logging.WARNING):
        metrics = train(cfg)
    assert "val/psnr" in metrics and not any(k.startswith("test/") for k in metrics)
    named = [r.getMessage() for r in caplog.records if str(bad) in r.getMessage()]
    assert len(named) == 1, named
    assert any("test skipped" in r.getMessage() for r in caplog.records)


def test_a_generator_file_as_resume_checkpoint_is_one_line(tiny_train_config, tmp_path):
    cfg = tiny_train_config()
    generator = save_generator(
        instantiate(cfg.model), OmegaConf.to_container(cfg.model, resolve=True), tmp_path / "g.pt"
    )
    with pytest.raises(CheckpointError, match="is a generator file") as error:
        train(tiny_train_config(f"ckpt_path={generator}"))
    assert "\n" not in user_error_message(error.value)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


# -- 6. one run dir, one run ----------------------------------------------------------------------------------


def _metric_steps(run: Path) -> list[int]:
    with open(run / "csv" / "metrics.csv", newline="") as file:
        return sorted({int(row["step"]) for row in csv.DictReader(file)})


def test_resuming_into_its_run_dir_keeps_metrics_and_another_run_is_refused(tiny_train_config):
    cfg = tiny_train_config("test=false")
    train(cfg)
    run = Path(cfg.paths.output_dir)
    before = _metric_steps(run)
    assert before

    with pytest.raises(ConfigError, match="already holds another run's checkpoints"):
        train(tiny_train_config("test=false"))

    train(
        tiny_train_config(
            "test=false", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "trainer.max_steps=4"
        )
    )
    after = _metric_steps(run)
    assert set(before) <= set(after) and max(after) > max(before)


def test_an_unreadable_image_is_reported_once_across_workers_and_epochs(tmp_path):
    paths = write_tiny_images(tmp_path / "images", count=4)
    paths[1].write_bytes(b"broken")
    log_file = tmp_path / "data.log"
    handler = logging.FileHandler(log_file)  # forked workers inherit it: their records reach the file
    data_log = logging.getLogger("inpainting.data")
    data_log.addHandler(handler)
    try:
        dataset = InpaintingDataset(paths, None, mask_generator=BoxMask(), mask_seed=0)
        loader = DataLoader(dataset, batch_size=1, num_workers=2)
        for _epoch in range(2):
            for _ in loader:
                pass
    finally:
        data_log.removeHandler(handler)
        handler.close()
    lines = [line for line in log_file.read_text().splitlines() if str(paths[1]) in line]
    assert len(lines) == 1, lines
