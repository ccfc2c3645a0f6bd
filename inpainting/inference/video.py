"""Streaming video inpainting: ``python -m inpainting.predict input=clip.mp4 mask=mask.png output=out.mp4``.

Memory is bounded by the window and the frame size, never by the video's length: frames are decoded one at a time
(:func:`inpainting.data.video.open_video`), held in a deque of at most ``T`` frames, and each output frame is
encoded as soon as it is final.

**Windows.** ``T`` (``window``) is the clip length the model was trained on when its file records one (a training
checkpoint's ``data.clip_length``, a generator file's ``metadata.clip_length``), else the ``window`` option
(default 5). Windows of ``T`` frames start every ``stride = T - 2 * overlap`` frames (``overlap`` defaults to
``T // 4``, at least 1 when ``T >= 3``); each window writes only its centre frames ``[overlap, T - overlap)``, so
every written frame has ``overlap`` frames of context on both sides and every frame is written exactly once. The
first window also writes its leading ``overlap`` frames; after the last full window, one more window made of the
last ``T`` frames writes whatever is left (a video shorter than ``T`` is one window)::

    T = 5, overlap = 1, stride = 3:   frames 0 1 2 3 4 5 6 7 8 9 10
    window 0 (frames 0-4)             W W W W .
    window 1 (frames 3-7)                   . W W W .
    window 2 (frames 6-10)                        . W W W W   (the last window writes its trailing edge)

Per-frame methods (an image model, ``telea``/``harmonic``/...) see no other frame, so they run with ``T = 1``.
An exported video network (``python -m inpainting.export format=onnx``) runs on the ``T`` its file's header records
(its graph takes exactly that many frames; another ``window`` is refused, a video shorter than ``T`` repeats its
last frame).

**Masks.** A single image is a static mask for every frame (a logo); a mask video or a folder of numbered masks is
read in lockstep with the video (grey level ``> threshold`` = missing, or ``invert``; a 0/1 mask is read as is).
Frame counts and sizes are compared before anything is written; a mismatch is one line naming both files.

**Crop.** Per window, the holes of all its frames are merged and cut out as for images
(:func:`inpainting.inference.hole_boxes`: each hole's bounding box plus ``margin``); the method runs on those crops
(padded to the network's multiple, downscaled above ``max_side``), and only hole pixels are pasted back, so every
pixel outside the holes is bit-identical before encoding (and in a PNG frame folder output). A window whose frames
to write have no hole is copied through without running anything.

**Output.** ``.mp4`` (``mp4v``) or ``.avi`` (``MJPG``) through ``cv2.VideoWriter`` at the source's fps and size, or
a folder of PNG frames (``000000.png``, ...; lossless). Everything is written under a temporary name beside the
output and renamed at the end, so an interrupted run leaves no partial file under the final name; an existing
output is never replaced unless ``overwrite`` (and then only a video file or a folder holding only images).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inpainting.data.images import ImageReadError, is_image_file, read_mask
from inpainting.data.predict_plan import file_id
from inpainting.data.video import (
    VIDEO_EXTENSIONS,
    VideoInfo,
    VideoReadError,
    frame_files,
    is_video_file,
    open_video,
    probe_video,
)
from inpainting.errors import ConfigError, InputError, UserError
from inpainting.evaluation.video_baselines import VIDEO_BASELINES, PerFrame, get_video_baseline
from inpainting.inference.checkpoint import (
    DEFAULT_WEIGHTS_ENV,
    load_generator,
    resolve_weights,
)
from inpainting.inference.inpainter import (
    STRATEGIES,
    Box,
    Inpainter,
    LoadedModel,
    detect_kind,
    from_module,
    hole_boxes,
    load_model,
    pad_multiple,
    to_model_input,
    to_uint8,
)

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 5
#: a shipped video model, preferred over the image default when present (and $INPAINTING_WEIGHTS is not set)
VIDEO_DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "sa_unet_video_default.pt"
#: video containers written, with their codec
CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
#: frame rate of a video written from a frame folder (which has none)
FOLDER_FPS = 25.0
FRAME_NAME = "{:06d}.png"

T = TypeVar("T")


class VideoOutputError(UserError, OSError):
    """An output video or frame folder that exists already or cannot be written."""


# ----------------------------------------------------------------------------------------------------------
# windows
# ----------------------------------------------------------------------------------------------------------


def default_overlap(window: int) -> int:
    """``T // 4`` frames of context each side (at least 1 from ``T = 3``), leaving a stride of at least 1."""
    return min(max(1, window // 4), (window - 1) // 2)


def check_window(window: int, overlap: int | None) -> tuple[int, int]:
    """Validated ``(window, overlap)``; the stride ``window - 2 * overlap`` must be at least 1."""
    if window < 1:
        raise ConfigError(f"window={window}: needs at least 1 frame")
    overlap = default_overlap(window) if overlap is None else int(overlap)
    if overlap < 0 or window - 2 * overlap < 1:
        raise ConfigError(
            f"overlap={overlap} with window={window}: needs 0 <= overlap <= {(window - 1) // 2} (window - 2*overlap >= 1)"
        )
    return window, overlap


def stream_windows(items: Iterable[T], window: int, overlap: int) -> Iterator[tuple[list[T], int, int]]:
    """``(window items, keep_start, keep_stop)``: the scheme of the module docstring over a stream.

    At most ``window`` items are held (a deque); ``items[keep_start:keep_stop]`` of each window are the ones to
    write, and over all windows they are every item once, in order.
    """
    stride = window - 2 * overlap
    held: deque[T] = deque(maxlen=window)
    read = written = 0
    complete_at = window  # items read when the next full window is complete
    full = (
        False  # ``held`` is a full window not yet yielded: wait for one more item to know if it is the last
    )
    for item in items:
        if full:  # more follows: the window writes its centre only
            start = read - window
            yield list(held), written - start, window - overlap
            written, full = read - overlap, False
        held.append(item)
        read += 1
        if read == complete_at:
            full, complete_at = True, complete_at + stride
    if written < read:  # the last window (or a stream shorter than it) writes through the end
        start = read - len(held)
        yield list(held), written - start, read - start


# ----------------------------------------------------------------------------------------------------------
# methods: fill the frames of a window that are to be written
# ----------------------------------------------------------------------------------------------------------


class WindowFiller(Protocol):
    def __call__(self, frames: np.ndarray, holes: np.ndarray, keep: slice) -> np.ndarray:
        """uint8 ``T x H x W x 3`` + bool ``T x H x W`` -> the filled frames ``frames[keep]`` (uint8)."""


ClipFn = Callable[
    [np.ndarray, np.ndarray], np.ndarray
]  # uint8 T x h x w x 3, bool T x h x w -> uint8 T x h x w x 3


@dataclass
class PerFrameModel:
    """An image model frame by frame through :class:`Inpainter` (its crop, padding and paste-back)."""

    inpainter: Inpainter

    def __call__(self, frames: np.ndarray, holes: np.ndarray, keep: slice) -> np.ndarray:
        return np.stack(
            [self.inpainter(f, h) if h.any() else f for f, h in zip(frames[keep], holes[keep], strict=True)]
        )


@dataclass
class ClipMethod:
    """A clip method (video network or classical baseline) on the union crop(s) of a window's holes."""

    run: ClipFn
    strategy: str = "crop"
    max_side: int | None = None  # None: never downscale (classical methods run at native resolution)
    margin: int = 128

    def __call__(self, frames: np.ndarray, holes: np.ndarray, keep: slice) -> np.ndarray:
        union = holes.any(0)
        result = frames.copy()
        height, width = union.shape
        boxes: list[Box] = (
            hole_boxes(union, self.margin) if self.strategy == "crop" else [(0, 0, height, width)]
        )
        for top, left, bottom, right in boxes:
            crop_holes = holes[:, top:bottom, left:right]
            if not crop_holes.any():
                continue
            filled = self._fill(frames[:, top:bottom, left:right], crop_holes)
            view = result[:, top:bottom, left:right]
            view[crop_holes] = filled[crop_holes]
        return result[keep]

    def _fill(self, frames: np.ndarray, holes: np.ndarray) -> np.ndarray:
        height, width = holes.shape[1:]
        limit = self.max_side if self.strategy != "full" else None
        if limit is None or max(height, width) <= limit:
            return self.run(frames, holes)
        scale = limit / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))  # cv2: (w, h)
        small = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
        small_holes = np.stack(
            [cv2.resize(h.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0 for h in holes]
        )
        out = self.run(small, small_holes)
        composite = np.where(small_holes[..., None], out, small)
        return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in composite])


def clip_network(net: nn.Module, device: str = "cpu") -> ClipFn:
    """A ``B x T x 3 x H x W`` network as a :data:`ClipFn`: padded to its multiple (border = hole), cropped back."""
    net = net.to(device).eval()
    multiple = pad_multiple(net)

    @torch.inference_mode()
    def run(frames: np.ndarray, holes: np.ndarray) -> np.ndarray:
        height, width = holes.shape[1:]
        x, m = (torch.from_numpy(a)[None].to(device) for a in to_model_input(frames, holes))
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        x = F.pad(x, (0, pad_w, 0, pad_h))
        m = F.pad(m, (0, pad_w, 0, pad_h), value=1.0)
        out = net(x, m)[0, :, :, :height, :width]
        return to_uint8(out.float().cpu().numpy())

    return run


def clip_model(model: LoadedModel) -> ClipFn:
    """An exported video network (ONNX, TorchScript) as a :data:`ClipFn`; it pads to its multiple itself.

    Its graph takes exactly ``model.frames`` frames: a window of fewer (a video shorter than ``T``) gets its last
    frame repeated up to ``T``, and only the real frames are returned."""
    size = model.frames
    if size is None:
        raise ValueError(f"{model.describe()} is not a video model")

    def run(frames: np.ndarray, holes: np.ndarray) -> np.ndarray:
        count = len(frames)
        index = np.minimum(np.arange(max(size, count)), count - 1)  # a longer window fails in model()
        x, m = to_model_input(frames[index], holes[index])
        return to_uint8(model(x[None], m[None])[0, :count])

    return run


def classical(name: str) -> ClipFn:
    """A classical video baseline as a :data:`ClipFn` (its contract takes a uint8 mask)."""
    method = get_video_baseline(name)
    return lambda frames, holes: method(frames, holes.astype(np.uint8))


@dataclass
class VideoMethod:
    """What fills the windows, the window it wants, and a line saying what it is."""

    fill: WindowFiller
    window: int
    description: str


def is_video_network(net: nn.Module) -> bool:
    """True for a clip network (``B x T x 3 x H x W``), e.g. :class:`~inpainting.models.sa_unet_video.SAUNetVideo`."""
    from inpainting.models.sa_unet_video import SAUNetVideo

    return isinstance(net, SAUNetVideo)


def recorded_clip_length(config: dict[str, Any]) -> int | None:
    """The clip length a model file records: a training checkpoint's ``data.clip_length`` or a generator file's
    ``metadata.clip_length``; None when it records none."""
    for section in ("data", "metadata"):
        value = (config.get(section) or {}).get("clip_length")
        if isinstance(value, int) and value >= 1:
            return value
    return None


def default_model_path() -> Path:
    """``$INPAINTING_WEIGHTS`` if set, else the shipped video model if there is one, else the image default."""
    if not os.environ.get(DEFAULT_WEIGHTS_ENV) and VIDEO_DEFAULT_WEIGHTS.is_file():
        return VIDEO_DEFAULT_WEIGHTS
    return resolve_weights(None)


def load_video_method(
    ckpt_path: str | os.PathLike | None = None,
    method: str | None = None,
    device: str = "cpu",
    window: int | None = None,
    strategy: str = "crop",
    max_side: int | None = 1024,
    margin: int = 128,
    trust_code: bool = False,
) -> VideoMethod:
    """A classical ``method``, or the model in ``ckpt_path`` (None: :func:`default_model_path`).

    A video network runs on clips of ``window`` frames (None: the clip length its file records, else
    :data:`DEFAULT_WINDOW`; an exported one, ONNX or TorchScript, only on the ``T`` it was exported for); an image
    model (generator, checkpoint, TorchScript, ONNX) runs frame by frame. ``trust_code``: allow a TorchScript file.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy={strategy!r} is not one of {', '.join(STRATEGIES)}")
    if margin < 0:
        raise ConfigError(f"margin must be >= 0, got {margin}")
    if method:
        if ckpt_path:
            raise ConfigError(
                f"method={method} is a classical method and ckpt_path={ckpt_path} a model: pass one of them"
            )
        if method not in VIDEO_BASELINES:
            raise ConfigError(
                f"method={method!r} is not one of {', '.join(VIDEO_BASELINES)} (or null: a model)"
            )
        run = get_video_baseline(method)
        if isinstance(run, PerFrame):
            return VideoMethod(
                ClipMethod(classical(method), strategy, None, margin), 1, f"{method} per frame"
            )
        size = window or DEFAULT_WINDOW
        return VideoMethod(ClipMethod(classical(method), strategy, None, margin), size, f"{method} on clips")
    path = Path(ckpt_path).expanduser() if ckpt_path else default_model_path()
    path = resolve_weights(path)
    if detect_kind(path) == "checkpoint":
        net, config = load_generator(path)
        if is_video_network(net):
            size = window or recorded_clip_length(config) or DEFAULT_WINDOW
            target = config["model"].get("_target_", "?")
            return VideoMethod(
                ClipMethod(clip_network(net, device), strategy, max_side, margin),
                size,
                f"video model {target} from {path} on clips of {size} frames",
            )
        model = from_module(net, device, {"model": config["model"]})
        model.path = path
    else:
        model = load_model(path, device, trust_code)
        if model.frames is not None:  # an exported video network: its graph fixes T
            if window and window != model.frames:
                raise ConfigError(
                    f"window={window}: {path} was exported for clips of {model.frames} frames; "
                    f"leave window unset (or window={model.frames})"
                )
            return VideoMethod(
                ClipMethod(clip_model(model), strategy, max_side, margin),
                model.frames,
                f"video model {model.describe()} on clips of {model.frames} frames",
            )
    inpainter = Inpainter(model, strategy, max_side, margin)
    return VideoMethod(PerFrameModel(inpainter), 1, f"image model {model.describe()}, frame by frame")


# ----------------------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------------------


def _holes(grey: np.ndarray, threshold: int, invert: bool) -> np.ndarray:
    """Grey mask -> bool holes, as :func:`inpainting.data.images.read_mask` reads a file (0/1 masks as is)."""
    holes = grey == 1 if grey.size and grey.max() == 1 else grey > threshold
    return ~holes if invert else holes


@dataclass
class MaskSource:
    """A static mask, a mask video or a folder of masks, checked against the video; iterate for bool holes."""

    path: Path
    video: VideoInfo
    threshold: int = 127
    invert: bool = False

    def __post_init__(self) -> None:
        self.static: np.ndarray | None = None
        self.files: list[Path] = []
        if self.path.is_dir():
            self.kind = "mask folder"
            self.files = [p for p in frame_files(self.path)]
            if not self.files:
                raise InputError(f"mask folder {self.path} holds no image files (one mask per frame)")
            count, (height, width) = len(self.files), self._read_file(self.files[0]).shape
        elif is_video_file(self.path):
            self.kind = "mask video"
            info = probe_video(self.path)
            count, height, width = info.frames, info.height, info.width
        elif self.path.is_file():
            self.kind = "mask"
            self.static = self._read_file(self.path)
            count, (height, width) = self.video.frames, self.static.shape
        else:
            raise FileNotFoundError(f"mask_path={self.path}: no such file or folder")
        if (width, height) != (self.video.width, self.video.height):
            raise InputError(
                f"{self.kind} {self.path} is {width}x{height} (WxH) but the video {self.video.path} is "
                f"{self.video.width}x{self.video.height}: they must be the same size"
            )
        if count != self.video.frames:
            raise InputError(
                f"{self.kind} {self.path} has {count} frames but the video {self.video.path} has "
                f"{self.video.frames}: give one mask per frame (or a single mask image for all frames)"
            )

    def _read_file(self, path: Path) -> np.ndarray:
        try:
            mask = read_mask(path, threshold=self.threshold)
        except ImageReadError as error:
            raise InputError(str(error)) from error
        holes = mask != 0
        return ~holes if self.invert else holes

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.static is not None:
            while True:
                yield self.static
        elif self.files:
            for path in self.files:
                holes = self._read_file(path)
                if holes.shape != (self.video.height, self.video.width):
                    raise InputError(
                        f"mask {path} is {holes.shape[1]}x{holes.shape[0]} but the video {self.video.path} is "
                        f"{self.video.width}x{self.video.height}"
                    )
                yield holes
        else:
            with open_video(self.path) as stream:
                for frame in stream:
                    yield _holes(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), self.threshold, self.invert)


def lockstep(frames: Iterable[np.ndarray], masks: MaskSource) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(frame, holes)`` pairs; a mask stream that ends before the video is an error naming both."""
    mask_iter = iter(masks)
    for index, frame in enumerate(frames):
        holes = next(mask_iter, None)
        if holes is None:
            raise InputError(
                f"{masks.kind} {masks.path} ends after {index} frames but the video {masks.video.path} goes on"
            )
        yield frame, holes


# ----------------------------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------------------------


def plan_output(output: Path, inputs: list[Path], overwrite: bool) -> str:
    """``"video"`` or ``"frames"`` for ``output``; refuses (one line) an input, an existing output without
    ``overwrite``, an unsupported extension, or an existing folder that holds more than images."""
    suffix = output.suffix.lower()
    as_folder = output.is_dir() or str(output).endswith(os.sep) or not suffix
    if not as_folder and suffix not in CODECS:
        if suffix in VIDEO_EXTENSIONS:
            raise ConfigError(
                f"output={output}: write .mp4 or .avi (or a folder of PNG frames, e.g. out_frames/)"
            )
        raise ConfigError(
            f"output={output}: for a video, name a .mp4 or .avi file or a folder for PNG frames (e.g. out_frames/)"
        )
    ids = {fid: p for p in inputs if (fid := file_id(p)) is not None}
    if (hit := ids.get(file_id(output) or (-1, -1))) is not None:
        raise VideoOutputError(f"output {output} is the input {hit}; choose another output")
    if output.is_dir():
        entries = list(output.iterdir())
        if entries and not overwrite:
            raise VideoOutputError(
                f"output folder {output} already exists and is not empty; pass overwrite=true to replace it, "
                "or choose another output"
            )
        if entries and not all(e.is_file() and is_image_file(e.name) for e in entries):
            raise VideoOutputError(
                f"output folder {output} holds files other than frames; not replacing it, choose another output"
            )
    elif os.path.lexists(output) and (as_folder or not overwrite):
        raise VideoOutputError(
            f"output {output} already exists; pass overwrite=true to replace it, or choose another output"
        )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VideoOutputError(f"cannot create the output folder {output.parent}: {error}") from error
    return "frames" if as_folder else "video"


class FrameSink:
    """Writes RGB frames under a temporary name beside ``output``; :meth:`commit` renames it into place."""

    def __init__(self, output: Path, kind: str, fps: float, size: tuple[int, int], overwrite: bool) -> None:
        self.output, self.kind, self.overwrite, self.count = output, kind, overwrite, 0
        parent, prefix = output.parent, f".{output.name}.partial-"
        if kind == "frames":
            self.tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            self.writer = None
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=output.suffix, dir=parent)
            os.close(fd)
            self.tmp = Path(name)
            fourcc = cv2.VideoWriter_fourcc(*CODECS[output.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, size)
            if not self.writer.isOpened():
                self.abort()
                raise VideoOutputError(
                    f"cannot write {output}: OpenCV has no {CODECS[output.suffix.lower()]} encoder"
                )

    def write(self, frame: np.ndarray) -> None:
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if self.writer is not None:
            self.writer.write(bgr)
        elif not cv2.imwrite(str(self.tmp / FRAME_NAME.format(self.count)), bgr):
            raise VideoOutputError(f"cannot write frame {self.count} into {self.tmp}")
        self.count += 1

    def abort(self) -> None:
        """Remove the temporary file or folder (an interrupted or failed run leaves nothing)."""
        if self.writer is not None:
            self.writer.release()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.tmp) if self.tmp.is_dir() else self.tmp.unlink()

    def commit(self) -> None:
        """Rename the finished temporary into place: create-only unless ``overwrite``."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.kind == "video":
            if self.overwrite:
                os.replace(self.tmp, self.output)
                return
            try:
                os.link(self.tmp, self.output)  # fails if the name appeared meanwhile: create-only
            except FileExistsError as error:
                self.abort()
                raise VideoOutputError(
                    f"output {self.output} appeared during the run; not replacing it"
                ) from error
            except OSError:  # no hard links on this file system
                if os.path.lexists(self.output):
                    self.abort()
                    raise VideoOutputError(
                        f"output {self.output} appeared during the run; not replacing it"
                    ) from None
                os.rename(self.tmp, self.output)
                return
            self.tmp.unlink()
            return
        old = None
        if self.output.is_dir() and any(self.output.iterdir()):
            if not self.overwrite:
                self.abort()
                raise VideoOutputError(
                    f"output folder {self.output} filled up during the run; not replacing it"
                )
            old = Path(tempfile.mkdtemp(prefix=f".{self.output.name}.old-", dir=self.output.parent))
            os.replace(self.output, old / "frames")
        elif self.output.is_dir():
            self.output.rmdir()  # an empty folder made beforehand
        elif os.path.lexists(self.output):
            self.abort()
            raise VideoOutputError(f"output {self.output} appeared during the run; not replacing it")
        os.rename(self.tmp, self.output)
        if old is not None:
            shutil.rmtree(old)


# ----------------------------------------------------------------------------------------------------------
# progress
# ----------------------------------------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class FrameProgress:
    """A rich progress bar with time left in a terminal; elsewhere (a batch job's log, a pipe) a log line every
    ``every`` items. ``unit`` names the items: frames of a video, images of a predict folder."""

    def __init__(self, total: int, enabled: bool = True, every: int = 100, unit: str = "frame") -> None:
        self.total, self.every, self.done, self.start = total, every, 0, time.perf_counter()
        self.unit = unit
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(f"inpainting {unit}s"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
            )
            self.task = self.bar.add_task(f"{unit}s", total=total)
            self.bar.start()
        self.log = enabled and self.bar is None

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
        elif self.log and (self.done % self.every == 0 or self.done == self.total):
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
            log.info(
                "%s %d/%d (%.0f%%), %.1f %ss/s, %s left",
                self.unit,
                self.done,
                self.total,
                100 * self.done / max(self.total, 1),
                rate,
                self.unit,
                _clock(eta),
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ----------------------------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------------------------


def inpaint_stream(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], fill: WindowFiller, window: int, overlap: int
) -> Iterator[np.ndarray]:
    """Filled frames, in order, one per input ``(frame, holes)`` pair; at most ``window`` pairs are held."""
    for items, keep_start, keep_stop in stream_windows(pairs, window, overlap):
        kept = items[keep_start:keep_stop]
        if any(holes.any() for _, holes in kept):
            frames = np.stack([frame for frame, _ in items])
            holes = np.stack([holes for _, holes in items])
            del items, kept  # only the deque keeps frames while the method runs and the results are written
            yield from fill(frames, holes, slice(keep_start, keep_stop))
            del frames, holes
        else:  # nothing to fill: copy through, run nothing
            del items
            while kept:
                yield kept.pop(0)[0]


@dataclass
class VideoResult:
    output: Path
    frames: int
    fps: float
    seconds: float
    method: str


def is_video_input(source: Path, mask: Path | None, output: Path | None, mode: Any = "auto") -> bool:
    """Whether predict takes the video path: ``video=true``, or (``auto``) a video file, or a folder of frames
    with a single mask (image or video) or a ``.mp4``/``.avi`` output. A folder with a folder of masks stays a
    folder of photos unless ``video=true``."""
    if isinstance(mode, bool) or str(mode).lower() in ("true", "false"):
        return str(mode).lower() == "true"
    if str(mode).lower() != "auto":
        raise ConfigError(
            f"video={mode}: use auto, true (input is a video or a frame folder) or false (photos)"
        )
    if source.is_file():
        return is_video_file(source)
    if source.is_dir():
        single_mask = mask is not None and mask.is_file()
        return single_mask or (output is not None and output.suffix.lower() in CODECS)
    return False


def predict_video(
    source: str | os.PathLike,
    mask: str | os.PathLike,
    output: str | os.PathLike,
    *,
    method: VideoMethod | None = None,
    ckpt_path: str | os.PathLike | None = None,
    classical_method: str | None = None,
    device: str = "cpu",
    window: int | None = None,
    overlap: int | None = None,
    threshold: int = 127,
    invert: bool = False,
    strategy: str = "crop",
    max_side: int | None = 1024,
    margin: int = 128,
    overwrite: bool = False,
    progress: bool = True,
    trust_code: bool = False,
) -> VideoResult:
    """Inpaint the video (file or frame folder) ``source`` with ``mask`` into ``output`` (module docstring).

    Everything that can be refused (mask count/size, output name) is checked before the model loads and before
    anything is written. ``method``: an already loaded :class:`VideoMethod` (else built from ``ckpt_path`` /
    ``classical_method``; ``window`` overrides the recorded clip length).
    """
    source, mask, output = Path(source), Path(mask), Path(output)
    if not 0 <= int(threshold) <= 255:
        raise ConfigError(f"threshold={threshold} must be in 0..255")
    if not source.exists():
        raise FileNotFoundError(f"input={source}: no such video file or frame folder")
    try:
        info = probe_video(source)
    except VideoReadError as error:
        raise InputError(str(error)) from error
    masks = MaskSource(mask, info, int(threshold), bool(invert))
    kind = plan_output(output, [source, mask, *masks.files], overwrite)
    if method is None:
        method = load_video_method(
            ckpt_path, classical_method, device, window, strategy, max_side, margin, trust_code
        )
    # a per-frame method (window 1) sees no other frame: more frames per window would only cost memory
    size, overlap = check_window(method.window if method.window == 1 else (window or method.window), overlap)
    fps = info.fps or FOLDER_FPS
    if info.fps is None and kind == "video":
        log.warning("%s is a frame folder (no frame rate): writing %s at %g fps", source, output, fps)
    log.info(
        "%s: %d frames %dx%d; %s; window %d, overlap %d",
        source,
        info.frames,
        info.width,
        info.height,
        method.description,
        size,
        overlap,
    )
    start = time.perf_counter()
    bar = FrameProgress(info.frames, progress)
    sink = FrameSink(output, kind, fps, (info.width, info.height), overwrite)
    try:
        with open_video(source) as stream:
            for frame in inpaint_stream(lockstep(stream, masks), method.fill, size, overlap):
                sink.write(frame)
                bar.advance()
        if sink.count == 0:
            raise InputError(f"no frame of {source} decoded")
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    log.info("wrote %d frames to %s (%.1f frames/s)", sink.count, output, sink.count / max(seconds, 1e-9))
    return VideoResult(output, sink.count, fps, seconds, method.description)


def default_output(source: Path, run_dir: Path) -> Path:
    """``<run dir>/<name>.mp4`` for a video file, ``<run dir>/<name>/`` (PNG frames) for a frame folder."""
    return run_dir / (f"{source.stem}.mp4" if source.is_file() else source.name)


def predict_video_from_config(cfg: Any) -> VideoResult:
    """predict's video branch: the options of ``conf/predict.yaml`` -> :func:`predict_video`."""
    source = Path(str(cfg.input)).expanduser()
    if not cfg.get("mask_path"):
        raise ConfigError(
            f"input={source} is a video: pass mask=PATH (one mask image for all frames, a mask video, "
            "or a folder of numbered masks)"
        )
    mask = Path(str(cfg.mask_path)).expanduser()
    output = (
        Path(str(cfg.output)).expanduser()
        if cfg.get("output")
        else default_output(source, Path(cfg.paths.output_dir))
    )
    return predict_video(
        source,
        mask,
        output,
        ckpt_path=cfg.get("ckpt_path"),
        classical_method=cfg.get("method"),
        device=cfg.get("device", "cpu"),
        window=cfg.get("window"),
        overlap=cfg.get("overlap"),
        threshold=int(cfg.threshold),
        invert=bool(cfg.invert),
        strategy=cfg.strategy,
        max_side=cfg.max_side,
        margin=int(cfg.margin),
        overwrite=bool(cfg.get("overwrite", False)),
        progress=bool(cfg.get("progress", True)),
        trust_code=bool(cfg.get("trust_code", False)),
    )


__all__ = [
    "CODECS",
    "DEFAULT_WINDOW",
    "VIDEO_DEFAULT_WEIGHTS",
    "ClipMethod",
    "FrameSink",
    "MaskSource",
    "PerFrameModel",
    "VideoMethod",
    "VideoOutputError",
    "VideoResult",
    "check_window",
    "clip_model",
    "clip_network",
    "default_overlap",
    "inpaint_stream",
    "is_video_input",
    "load_video_method",
    "predict_video",
    "predict_video_from_config",
    "stream_windows",
]
