"""`python -m inpainting.evaluate data=video`: clips, fixed clip masks, hole PSNR/SSIM, warping error, reports.

On tiny static-camera videos written with cv2.VideoWriter (MJPG .avi): every test takes seconds."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from inpainting.errors import ConfigError
from inpainting.evaluation.runner import run
from inpainting.evaluation.video_evaluator import EvalClip, VideoMethod, evaluate_clips
from inpainting.evaluation.video_mask_sets import video_mask_set
from inpainting.evaluation.video_metrics import truth_flows, warp_error
from inpainting.inference.checkpoint import save_generator
from inpainting.models.sa_unet_video import SAUNetVideo
from tests.conftest import compose_config, run_cli

HEIGHT, WIDTH, FRAMES = 40, 48, 8
FAST = [
    "data=video",
    "data.image_size=32",
    "data.clip_length=4",
    "data.clips_per_video=2",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "split=all",
    "video_mask_sets=[area_10-20,area_30-40]",
    "masks_per_image=1",
    "workers=1",
]


def scene(seed: int = 0) -> np.ndarray:
    """A textured still (smoothed noise + shapes): telea cannot guess it, another frame shows it exactly."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (HEIGHT, WIDTH, 3)).astype(np.float32), (0, 0), 1.5)
    image = np.clip((noise - noise.mean()) * 3 + 128, 0, 255).astype(np.uint8)
    cv2.rectangle(image, (5, 5), (20, 18), (250, 30, 30), -1)
    return image


def write_static_video(path: Path, frames: int = FRAMES, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (WIDTH, HEIGHT))
    assert writer.isOpened(), path
    still = scene(seed)
    for _ in range(frames):
        writer.write(still)
    writer.release()
    return path


@pytest.fixture
def video_root(tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    write_static_video(root / "a.avi", seed=0)
    write_static_video(root / "sub" / "b.avi", seed=1)
    return root


@pytest.fixture
def video_config(tmp_path, video_root):
    def make(*overrides: str):
        return compose_config(
            tmp_path, [*FAST, f"data.root={video_root}", *overrides], config_name="evaluate"
        )

    yield make
    GlobalHydra.instance().clear()


def read_rows(path: Path) -> list[dict]:
    with open(path) as file:
        return list(csv.DictReader(file))


def test_cli_writes_results_and_summary(tmp_path, video_root):
    out = tmp_path / "cli"
    result = run_cli(
        [*FAST, f"data.root={video_root}", "methods=[telea,temporal_copy]", f"hydra.run.dir={out}"],
        cwd=tmp_path,
        entry="inpainting.evaluate",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_rows(out / "results.csv")
    assert len(rows) == 2 * 2 * 2 * 2  # videos x clips per video x mask sets x methods
    assert {r["clip"] for r in rows} == {"a@0", "a@4", "sub/b@0", "sub/b@4"}  # path + start frame
    summary = (out / "summary.md").read_text()
    assert "Split **all**: 4 clips of 4 frames at 32x32" in summary
    assert "| ground truth (floor) |" in summary and "| temporal_copy − telea |" in summary
    assert "Warping error" in summary and "±" in summary


def test_temporal_copy_beats_telea_and_runs_are_identical(video_config, tmp_path):
    files = run(video_config("methods=[telea,temporal_copy]"))
    rows = read_rows(files["results"])
    by = {(r["clip"], r["mask_set"], r["method"]): r for r in rows}
    for clip, mask_set, method in by:
        if method == "telea":
            copy, telea = by[(clip, mask_set, "temporal_copy")], by[(clip, mask_set, "telea")]
            assert float(copy["psnr"]) > float(telea["psnr"])
            assert float(copy["warp_error"]) < float(telea["warp_error"])
            assert float(copy["warp_error_gt"]) < 1e-3  # static scene: the ground truth does not flicker
    mean = {
        m: np.mean([float(r["psnr"]) for r in rows if r["method"] == m]) for m in ("telea", "temporal_copy")
    }
    assert mean["temporal_copy"] > mean["telea"] + 2
    again = run(video_config("methods=[telea,temporal_copy]", f"paths.output_dir={tmp_path / 'again'}"))
    assert again["results"].read_bytes() == files["results"].read_bytes()
    # robust columns as for images: pooled-MSE PSNR beside each mean, the median beside each mean difference
    summary = files["summary"].read_text()
    assert "(pooled " in summary and "median Δ PSNR" in summary
    psnr = {(r["clip"], r["mask_set"], r["mask_index"], r["method"]): float(r["psnr"]) for r in rows}
    differences = [v - psnr[(*k[:3], "telea")] for k, v in psnr.items() if k[3] == "temporal_copy"]
    line = next(x for x in summary.splitlines() if x.startswith("| temporal_copy − telea |"))
    assert line.split("|")[3].strip() == f"{round(float(np.median(differences)), 2) + 0.0:+.2f}"


def test_warping_error_is_zero_for_a_static_truth_and_larger_for_flicker():
    truth = np.repeat(scene()[None], 5, axis=0)
    holes = np.zeros(truth.shape[:3], np.uint8)
    holes[:, 10:25, 12:30] = 1
    flows = truth_flows(truth)
    assert warp_error(truth, flows, holes) < 1e-4
    flicker = truth.astype(np.int16)
    flicker[1::2][holes[1::2] != 0] += 40  # every other frame brighter inside the holes
    flicker = np.clip(flicker, 0, 255).astype(np.uint8)
    assert warp_error(flicker, flows, holes) > 0.01


def test_no_method_sees_a_hidden_pixel_and_known_pixels_come_back(video_root):
    clip = EvalClip("c", np.repeat(scene()[None, 4:36, 8:40], 4, axis=0))
    clip.masks["area_30-40"] = video_mask_set("area_30-40", 1, 4, 32, 32, seed=0)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def spy(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
        seen.append((frames.copy(), mask.copy()))
        return np.full_like(frames, 7)  # garbage everywhere: the known pixels must be pasted back

    rows = evaluate_clips([clip], [VideoMethod("spy", spy, "clip model")])
    frames, mask = seen[0]
    assert mask.any() and not frames[mask != 0].any()  # every hole pixel was zeroed
    assert np.array_equal(frames[mask == 0], clip.frames[mask == 0])
    assert rows[0]["psnr"] < 20 and np.isfinite(rows[0]["warp_error"])


def test_video_checkpoint_runs_on_whole_clips(video_config, tmp_path, monkeypatch):
    config = {"_target_": "inpainting.models.sa_unet_video.SAUNetVideo", "base_channels": 8}
    torch.manual_seed(0)
    ckpt = save_generator(SAUNetVideo(base_channels=8), config, tmp_path / "video.pt")
    frames_only = {**config, "temporal": False}  # the per-frame ablation, also run on whole clips
    single = save_generator(SAUNetVideo(base_channels=8, temporal=False), frames_only, tmp_path / "single.pt")
    shapes: list[tuple[int, ...]] = []
    forward = SAUNetVideo.forward

    def record(self, masked_image, mask):
        shapes.append(tuple(masked_image.shape))
        return forward(self, masked_image, mask)

    monkeypatch.setattr(SAUNetVideo, "forward", record)
    files = run(
        video_config(
            f"methods=[vid@ckpt:{ckpt},single@ckpt:{single},default,default_image]",
            "video_mask_sets=[area_20-30]",
        )
    )
    assert shapes and all(s[:2] == (1, 4) and len(s) == 5 for s in shapes)  # one 4-frame clip per call
    assert len(shapes) == 3 * 4  # video networks (default: the shipped video model) x clips x masks
    summary = files["summary"].read_text()
    assert "vid: whole clip at once" in summary and "default: whole clip at once" in summary
    assert "default_image: frame by frame" in summary  # the shipped image model
    assert "single: whole clip at once" in summary and "temporal=false" in summary
    assert (
        "| vid − default_image |" in summary and "| vid − single |" in summary
    )  # temporal vs per-frame, paired


def test_image_only_options_are_refused_on_one_line(video_config):
    with pytest.raises(ConfigError, match="video_mask_sets"):
        run(video_config("methods=[telea]", "mask_sets=[thick]"))
    with pytest.raises(ConfigError, match="unknown method 'patchmatch' for video"):
        run(video_config("methods=[patchmatch]"))
    with pytest.raises(ConfigError, match="duplicate names"):
        run(video_config("methods=[telea,telea]"))
