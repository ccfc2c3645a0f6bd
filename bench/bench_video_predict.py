"""Streaming video predict (``inpainting.inference.video``) on a generated 720p video: frames/s and peak RSS.

Generates an MJPG ``.avi`` of ``--frames`` frames (default 1000) at 1280x720 (a photo panning by 3 px a frame) and
a mask video of a 128x96 box moving across it, frame by frame (never the whole video in memory), then runs
:func:`inpainting.inference.video.predict_video` once per method, each in a fresh process so that its peak RSS
(``resource.getrusage``: ``ru_maxrss``) is its own:

* the shipped image model frame by frame (``inpainting/weights/sa_unet_default.pt``; no ``ckpt_path``);
* a video model on clips of 5 frames (the shipped ``sa_unet_video_default.pt`` if there is one, else
  ``SAUNetVideo`` initialised from the shipped image weights, saved as a generator file recording
  ``clip_length: 5``);
* OpenCV Telea frame by frame (``method=telea``).

Peak RSS includes the interpreter, torch and the model; what matters is that it does not grow with ``--frames``
(compare two runs). Output is written to an ``.avi`` (MJPG) in a temporary folder.

    python bench/bench_video_predict.py --frames 60                      # prints the markdown table
    python bench/bench_video_predict.py --write docs/benchmarks.md       # 1000 frames, writes the section
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FPS = 1280, 720, 25.0
BOX = (96, 128)  # hole height, width


def write_inputs(folder: Path, frames: int) -> tuple[Path, Path]:
    """The 720p video and its moving-box mask video, written one frame at a time."""
    from skimage import data

    photo = cv2.resize(data.astronaut(), (WIDTH * 2, HEIGHT), interpolation=cv2.INTER_CUBIC)
    photo = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    video, masks = folder / "clip.avi", folder / "masks.avi"
    video_writer = cv2.VideoWriter(str(video), fourcc, FPS, (WIDTH, HEIGHT))
    mask_writer = cv2.VideoWriter(str(masks), fourcc, FPS, (WIDTH, HEIGHT))
    for i in range(frames):
        offset = (3 * i) % WIDTH
        video_writer.write(np.ascontiguousarray(photo[:, offset : offset + WIDTH]))
        mask = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        top, left = HEIGHT // 2 - BOX[0] // 2, (200 + 2 * i) % (WIDTH - BOX[1])
        mask[top : top + BOX[0], left : left + BOX[1]] = 255
        mask_writer.write(mask)
    video_writer.release()
    mask_writer.release()
    return video, masks


def video_model_file(folder: Path) -> tuple[Path, str]:
    """The shipped video model, or SAUNetVideo from the shipped image weights (clip_length 5 recorded)."""
    sys.path.insert(0, str(ROOT))
    from inpainting.inference.checkpoint import default_weights_path, save_generator
    from inpainting.inference.video import VIDEO_DEFAULT_WEIGHTS
    from inpainting.models.sa_unet_video import SAUNetVideo

    if VIDEO_DEFAULT_WEIGHTS.is_file():
        return VIDEO_DEFAULT_WEIGHTS, VIDEO_DEFAULT_WEIGHTS.name
    from inpainting.inference.checkpoint import load_generator

    _, config = load_generator(default_weights_path())
    net = SAUNetVideo.from_image_generator(default_weights_path())
    model = {**config["model"], "_target_": "inpainting.models.sa_unet_video.SAUNetVideo", "temporal": True}
    path = save_generator(net, model, folder / "video.pt", {"clip_length": 5})
    return path, f"SAUNetVideo from {default_weights_path().name} (untrained on video)"


def child(args: argparse.Namespace) -> None:
    """One method in this process; prints a JSON line with frames, seconds and peak RSS."""
    sys.path.insert(0, str(ROOT))
    from inpainting.inference.video import predict_video

    start = time.perf_counter()
    result = predict_video(
        args.video,
        args.masks,
        args.output,
        ckpt_path=args.ckpt or None,
        classical_method=args.method or None,
        progress=False,
    )
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(
        json.dumps(
            {"frames": result.frames, "seconds": seconds, "rss_mb": peak_kb / 1024, "what": result.method}
        )
    )


#: name -> (table label, extra child arguments or None for the video model, model column); networks are "image"
#: and "video"
METHODS = {
    "image": ("shipped image model, per frame", [], "sa_unet_default.pt"),
    "video": ("video model, clips of 5", None, ""),
    "telea": ("OpenCV Telea, per frame", ["--method", "telea"], "method=telea"),
    "temporal_copy": ("temporal copy", ["--method", "temporal_copy"], "method=temporal_copy"),
    "flow_guided": ("flow-guided propagation", ["--method", "flow_guided"], "method=flow_guided"),
}
NETWORKS = ("image", "video")


def run(frames: int, methods: list[str], model_frames: int | None = None) -> list[dict]:
    """One row per method, each measured in its own process; networks on the first ``model_frames`` frames
    (a video of its own, generated the same way) when given, as they are two orders of magnitude slower."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = {}
        for count in sorted({frames, model_frames or frames}):
            start = time.perf_counter()
            (folder / str(count)).mkdir()
            inputs[count] = write_inputs(folder / str(count), count)
            print(
                f"wrote {count} frames of {WIDTH}x{HEIGHT} in {time.perf_counter() - start:.1f}s",
                file=sys.stderr,
            )
        for index, name in enumerate(methods):
            label, extra, model = METHODS[name]
            if extra is None:
                video_model, model = video_model_file(folder)
                extra = ["--ckpt", str(video_model)]
            video, masks = inputs[(model_frames or frames) if name in NETWORKS else frames]
            command = [sys.executable, __file__, "--child", "--video", str(video), "--masks", str(masks)]
            command += ["--output", str(folder / f"out{index}.avi"), *extra]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{label} failed:\n{done.stderr[-2000:]}")
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "method": label,
                    "model": model,
                    "frames": measured["frames"],
                    "frames/s": round(measured["frames"] / measured["seconds"], 2),
                    "peak RSS (MB)": round(measured["rss_mb"]),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict], frames: int, model_frames: int | None = None) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report import markdown_table

    note = (
        f"{frames} frames of {WIDTH}x{HEIGHT} MJPG at {FPS:g} fps, a {BOX[1]}x{BOX[0]} box hole moving across "
        "them (a mask video streamed in lockstep); output MJPG .avi. Defaults of `python -m inpainting.predict`: "
        "`strategy=crop margin=128 max_side=1024`, clip windows of 5 with overlap 1 (stride 3). Each method in its "
        "own process; peak RSS includes Python, torch and the model, and is bounded by the window, not the "
        "video's length."
    )
    if model_frames and model_frames != frames:
        note += f" The networks ran on the first {model_frames} frames (a video of its own), the rest on all {frames}."
    return markdown_table(rows) + "\n\n" + note


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument(
        "--model-frames", type=int, default=None, help="frames for the networks (default: --frames)"
    )
    parser.add_argument(
        "--methods", default="image,video,telea", help=f"comma-separated, of {', '.join(METHODS)}"
    )
    parser.add_argument("--write", type=Path, default=None, help="write the section into this markdown page")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--video", "--masks", "--output", "--ckpt", "--method"):
        parser.add_argument(name, default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {', '.join(METHODS)}")
    rows = run(args.frames, methods, args.model_frames)
    body = markdown(rows, args.frames, args.model_frames)
    print(body)
    if args.write:
        from report import write_section

        write_section(
            "video_predict", "Video predict: streaming 720p, frames/s and peak memory", body, args.write
        )


if __name__ == "__main__":
    main()
