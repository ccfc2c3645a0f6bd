"""Streaming video predict: ``python -m inpainting.predict input=clip.avi mask=... output=...`` (inference/video.py)."""

from __future__ import annotations

import tracemalloc
import weakref
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra

import inpainting.inference.video as V
from inpainting.data.images import read_image_rgb
from inpainting.data.video import VideoFrames, frame_files, open_video, probe_video
from inpainting.inference.checkpoint import save_generator
from inpainting.inference.predict_runner import run
from inpainting.models.sa_unet_video import SAUNetVideo
from inpainting.predict import alias_mask_argument
from tests.conftest import CONF_DIR, compose_config, run_cli
from tests.test_inference import tiny_generator_file

HEIGHT, WIDTH, FRAMES, FPS = 24, 40, 9, 10.0
VIDEO_TINY = {"base_channels": 8, "num_heads": 2, "window_size": 4, "kv_grid": 4}


def frame(i: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """RGB frame i: a gradient with a square moving right (something for the codecs and the methods to see)."""
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 40 + 10 * i)], -1).astype(
        np.uint8
    )
    image[4:10, 2 + 2 * i : 8 + 2 * i] = (250, 30, 30)
    return image


def write_avi(path: Path, frames: list[np.ndarray], fps: float = FPS) -> Path:
    """MJPG avi (what every OpenCV build writes and reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for image in frames:
        writer.write(cv2.cvtColor(image if image.ndim == 3 else np.dstack([image] * 3), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def box_mask(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[top:bottom, left:right] = 255
    return mask


def decoded(path: Path) -> np.ndarray:
    with open_video(path) as stream:
        return np.stack(list(stream))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return tiny_generator_file(tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_avi(tmp_path / "clip.avi", [frame(i) for i in range(FRAMES)])


@pytest.fixture
def predict(tmp_path, weights):
    """``predict(*overrides)``: inpainting.predict in-process (tiny image model unless overridden)."""

    def make(*overrides: str):
        has_model = any(o.startswith(("ckpt_path=", "method=")) for o in overrides)
        model = [] if has_model else [f"ckpt_path={weights}"]
        cfg = compose_config(
            tmp_path, [*model, "progress=false", *alias_mask_argument(list(overrides))], "predict"
        )
        return run(cfg)

    yield make
    GlobalHydra.instance().clear()


# ------------------------------------------------------------------------------------------------------------
# windows
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window,overlap", [(5, 1), (5, 2), (5, 0), (1, 0), (8, 2)])
def test_windows_write_every_frame_once_in_order_with_context(window, overlap):
    for length in range(0, 23):
        written, windows = [], list(V.stream_windows(range(length), window, overlap))
        for items, start, stop in windows:
            assert len(items) <= window and items == list(range(items[0], items[0] + len(items)))
            written += items[start:stop]
        assert written == list(range(length))
        for _items, start, stop in windows[1:-1]:  # inner windows: context on both sides
            assert (start, stop) == (overlap, window - overlap)
    with pytest.raises(V.ConfigError, match="overlap=2 with window=4"):
        V.check_window(4, 2)


def test_windows_without_holes_are_copied_through_without_running_the_method():
    calls = []

    def fill(frames, holes, keep):
        calls.append(keep)
        return np.where(holes[keep][..., None], 0, frames[keep]).astype(np.uint8)

    frames = [frame(i) for i in range(12)]
    holes = [np.zeros((HEIGHT, WIDTH), bool) for _ in range(12)]
    holes[1][5:9, 5:9] = True
    out = list(V.inpaint_stream(zip(frames, holes, strict=True), fill, 5, 1))
    assert len(out) == 12 and len(calls) == 1  # only the first window writes frame 1
    assert all(out[i] is frames[i] for i in range(4, 12))  # the rest passed through untouched
    assert (out[1][5:9, 5:9] == 0).all()


# ------------------------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------------------------


def test_cli_static_mask_png_frames_keep_known_pixels_bit_identical(tmp_path, clip, weights):
    mask = box_mask(8, 12, 18, 26)
    cv2.imwrite(str(tmp_path / "logo.png"), mask)
    out = tmp_path / "out_frames"
    result = run_cli(
        [f"ckpt_path={weights}", f"input={clip}", f"mask={tmp_path / 'logo.png'}", f"output={out}/"]
        + ["margin=4", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=CONF_DIR.parent,
        entry="inpainting.predict",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = frame_files(out)
    assert len(files) == FRAMES
    source, holes = decoded(clip), mask > 0
    for original, path in zip(source, files, strict=True):
        filled = read_image_rgb(path)
        assert filled.shape == (HEIGHT, WIDTH, 3)
        assert np.array_equal(filled[~holes], original[~holes])  # outside the holes: bit-identical
        assert not np.array_equal(filled[holes], original[holes])
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_mask_video_to_avi_keeps_frame_count_fps_and_size(predict, tmp_path, clip):
    masks = write_avi(tmp_path / "masks.avi", [box_mask(5, 2 * i, 12, 2 * i + 8) for i in range(FRAMES)])
    out = tmp_path / "out.avi"
    result = predict(f"input={clip}", f"mask={masks}", f"output={out}", "margin=4")
    assert result.written == [out] and not result.failed
    info = probe_video(out)
    assert (info.frames, info.width, info.height) == (FRAMES, WIDTH, HEIGHT)
    assert info.fps == pytest.approx(FPS)


def test_video_model_runs_on_clips_from_a_frame_folder_and_mask_folder(predict, tmp_path, monkeypatch):
    torch_net = SAUNetVideo(**VIDEO_TINY).eval()
    model = save_generator(
        torch_net,
        {"_target_": "inpainting.models.sa_unet_video.SAUNetVideo", **VIDEO_TINY},
        tmp_path / "video.pt",
        {"clip_length": 3},
    )
    source, masks = tmp_path / "frames", tmp_path / "masks"
    source.mkdir(), masks.mkdir()
    for i in range(FRAMES):
        cv2.imwrite(str(source / f"f{i}.png"), cv2.cvtColor(frame(i), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(masks / f"m{i}.png"), box_mask(6, 10, 14, 20) if i % 4 else box_mask(0, 0, 0, 0))
    seen: list[tuple[int, ...]] = []
    forward = SAUNetVideo.forward
    monkeypatch.setattr(
        SAUNetVideo, "forward", lambda net, x, m: seen.append(tuple(x.shape)) or forward(net, x, m)
    )
    out = tmp_path / "filled"
    predict(
        f"ckpt_path={model}", f"input={source}", f"mask={masks}", f"output={out}", "video=true", "margin=2"
    )
    assert seen and all(shape[:2] == (1, 3) for shape in seen)  # clips of the recorded length 3
    assert all(shape[-1] < WIDTH for shape in seen)  # the crop around the holes (plus padding), not the frame
    files = frame_files(out)
    assert len(files) == FRAMES
    for i, path in enumerate(files):
        holes = box_mask(6, 10, 14, 20) > 0 if i % 4 else np.zeros((HEIGHT, WIDTH), bool)
        assert np.array_equal(read_image_rgb(path)[~holes], frame(i)[~holes])


def test_classical_method_and_existing_output_is_not_overwritten(predict, tmp_path, clip):
    cv2.imwrite(str(tmp_path / "logo.png"), box_mask(8, 12, 18, 26))
    out = tmp_path / "out.avi"
    out.write_bytes(b"precious")
    with pytest.raises(V.VideoOutputError, match=f"output {out} already exists; pass overwrite=true"):
        predict(f"input={clip}", f"mask={tmp_path / 'logo.png'}", f"output={out}", "method=flow_guided")
    assert out.read_bytes() == b"precious"
    predict(
        f"input={clip}",
        f"mask={tmp_path / 'logo.png'}",
        f"output={out}",
        "method=flow_guided",
        "overwrite=true",
    )
    assert probe_video(out).frames == FRAMES


def test_cli_shorter_mask_video_is_one_line_error_and_nothing_is_written(tmp_path, clip, weights):
    masks = write_avi(tmp_path / "masks.avi", [box_mask(5, 5, 10, 10)] * (FRAMES - 2))
    out = tmp_path / "out.mp4"
    result = run_cli(
        [
            f"ckpt_path={weights}",
            f"input={clip}",
            f"mask={masks}",
            f"output={out}",
        ],
        cwd=tmp_path,  # predict makes no run dir: the folder it runs from must be left as it was, too
        entry="inpainting.predict",
    )
    assert result.returncode == 1
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "frames but the video" in line]
    assert len(errors) == 1 and str(masks) in errors[0] and str(clip) in errors[0], (
        result.stdout + result.stderr
    )
    assert f"has {FRAMES - 2} frames" in errors[0] and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "masks.avi"]


def test_interrupted_run_leaves_no_file_under_the_final_name(tmp_path, clip):
    cv2.imwrite(str(tmp_path / "logo.png"), box_mask(8, 12, 18, 26))

    def fail_on_third(frames, holes):
        fail_on_third.calls += 1
        if fail_on_third.calls == 3:
            raise KeyboardInterrupt
        return frames

    fail_on_third.calls = 0
    method = V.VideoMethod(V.ClipMethod(fail_on_third, margin=2), 3, "failing")
    for out in (tmp_path / "out.avi", tmp_path / "frames"):
        fail_on_third.calls = 0
        with pytest.raises(KeyboardInterrupt):
            V.predict_video(clip, tmp_path / "logo.png", out, method=method, progress=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "logo.png"]


# ------------------------------------------------------------------------------------------------------------
# memory
# ------------------------------------------------------------------------------------------------------------


def test_memory_is_bounded_by_the_window_not_the_video_length(tmp_path, monkeypatch):
    height, width, window = 48, 64, 5
    mask = np.zeros((height, width), np.uint8)
    mask[10:30, 20:40] = 255
    cv2.imwrite(str(tmp_path / "logo.png"), mask)
    method = V.VideoMethod(
        V.ClipMethod(lambda f, h: np.where(h[..., None], 128, f).astype(np.uint8), margin=4),
        window,
        "grey fill",
    )
    held = {"max": 0}

    class CountingFrames(VideoFrames):  # counts how many of its frames are alive at each read
        def __iter__(self):
            alive: list[weakref.ref] = []
            for image in super().__iter__():
                alive.append(weakref.ref(image))
                alive[:] = [ref for ref in alive if ref() is not None]
                held["max"] = max(held["max"], len(alive))
                yield image
                del image

    monkeypatch.setattr(V, "open_video", CountingFrames)

    def peak(frames: int) -> int:
        source = write_avi(tmp_path / f"v{frames}.avi", [frame(i % 20, height, width) for i in range(frames)])
        out = tmp_path / f"out{frames}.avi"
        tracemalloc.start()
        try:
            result = V.predict_video(source, tmp_path / "logo.png", out, method=method, progress=False)
            traced = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result.frames == frames
        return traced

    peak(20)  # warm-up: first-call allocations (codecs, caches) are not the video's
    short, long = peak(60), peak(200)
    assert held["max"] <= window + 2
    frame_bytes = height * width * 3
    assert long < short + 10 * frame_bytes, (short, long)  # 140 more frames would be ~140 frames more
