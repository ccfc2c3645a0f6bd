"""Reading videos lazily: finding clips on disk, indexing them by frame count, reading one clip at a time.

A *video source* is either

* a video file (:data:`VIDEO_EXTENSIONS`, any case) that OpenCV's FFmpeg backend decodes, or
* a **frame folder**: a folder that directly holds image files (:data:`inpainting.data.images.IMAGE_EXTENSIONS`),
  one frame each, ordered by natural sort (``frame2.png`` before ``frame10.png``).

Nothing here keeps pixels of a whole video: :func:`probe_video` opens a source once to learn its frame count,
fps and size (a :class:`VideoInfo`, a few numbers and, for a folder, its file names), and :func:`read_clip` opens
it again, seeks to the first frame (``CAP_PROP_POS_FRAMES``) and decodes only that clip's frames.

``CAP_PROP_FRAME_COUNT`` comes from the container header and can be wrong (an mp4 that reports one frame more
than it holds; an AVI cut short whose header still counts every frame), so :func:`probe_video` verifies it: it
reads the last reported frame, stepping back (1, 2, 4, ... frames) until a frame decodes, then counts forward
with ``grab()`` to the first frame that does not. A source that does not open, or whose first frame does not
decode, raises :class:`VideoReadError` (naming the file); one that stops decoding midway is truncated to its
good frames (less the last one decoded, which the cut may have gone through: FFmpeg returns such a frame half
decoded instead of failing). Frames come out as RGB ``uint8`` arrays, as :func:`inpainting.data.images.read_image_rgb` gives
images.

:func:`open_video` is the streaming reader (one frame at a time, with fps and size) for predicting on whole videos.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inpainting.data.images import ImageReadError, is_image_file, read_image_rgb, walk_visible
from inpainting.errors import InputError

log = logging.getLogger("inpainting.data")

#: Video file extensions (lower case, with the dot) that :func:`list_videos` picks up; matching is case-insensitive.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov")


class VideoReadError(InputError):
    """A video file or frame folder could not be read. ``good_frames``: how many leading frames did decode,
    when a read failed partway (``None`` when the source does not open at all)."""

    def __init__(self, path: str | os.PathLike, reason: str, good_frames: int | None = None):
        self.path = Path(path)
        self.reason = reason
        self.good_frames = good_frames
        super().__init__(f"cannot read video {self.path}: {reason}")


class NoVideosFoundError(InputError):
    """A folder exists but holds no video file and no frame folder."""


@dataclass(frozen=True)
class VideoInfo:
    """What indexing needs to know about one source; ``frames`` is the verified count of decodable frames."""

    path: Path
    frames: int
    width: int
    height: int
    fps: float | None  # None for a frame folder (it has no rate)
    frame_files: tuple[Path, ...] = ()  # a frame folder's files, in order; empty for a video file

    @property
    def is_folder(self) -> bool:
        return bool(self.frame_files)


# --------------------------------------------------------------------------------------------------------------
# finding
# --------------------------------------------------------------------------------------------------------------


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``f2`` < ``f10`` (a plain sort gives ``f10`` < ``f2``)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


def is_video_file(path: str | os.PathLike) -> bool:
    """True when the name ends with one of :data:`VIDEO_EXTENSIONS` (case-insensitive) and is not hidden."""
    return is_image_file(path, VIDEO_EXTENSIONS)


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder`` (hidden ones ignored), in natural order: the frames of one clip."""
    folder = Path(folder)
    names = [e.name for e in os.scandir(folder) if is_image_file(e.name) and e.is_file()]
    return [folder / name for name in sorted(names, key=natural_key)]


def list_videos(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Video files and frame folders under ``root``, sorted by their path relative to ``root`` (so a split made
    from the list is the same on every machine). A folder that directly holds images is one frame folder (``root``
    itself too); hidden files and folders are ignored; symlinked folders are followed once.

    Raises:
        FileNotFoundError: ``root`` does not exist. NotADirectoryError: it is a file.
        NoVideosFoundError: nothing was found; the message names the folder and the extensions looked for.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"video folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"expected a folder of videos or frame folders, got the file {root}")
    found: list[tuple[str, Path]] = []
    for rel_dir, filenames in walk_visible(root, recursive):
        if any(is_image_file(name) for name in filenames):
            found.append((rel_dir.as_posix(), root / rel_dir))
        found.extend(((rel_dir / n).as_posix(), root / rel_dir / n) for n in filenames if is_video_file(n))
    if not found:
        raise NoVideosFoundError(
            f"no videos ({', '.join(VIDEO_EXTENSIONS)}) or frame folders (folders of images) found "
            f"{'under' if recursive else 'directly in'} {root}"
        )
    found.sort(key=lambda item: item[0])
    return [p for _, p in found]


# --------------------------------------------------------------------------------------------------------------
# probing and reading
# --------------------------------------------------------------------------------------------------------------


def _open_capture(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise VideoReadError(path, "the file does not exist" if not path.exists() else "it is not a file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoReadError(path, "OpenCV cannot open it (corrupt, truncated, or not a video it can decode)")
    return cap


def _rgb(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _readable_at(cap: cv2.VideoCapture, index: int) -> bool:
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    return bool(cap.grab())


def _verified_count(cap: cv2.VideoCapture, reported: int) -> int:
    """The number of decodable frames, trusting the header only as far as the frames go (module docstring)."""
    good, back = 0, 1
    while reported - back > 0:
        if _readable_at(cap, reported - back):
            good = reported - back
            break
        back *= 2
    cap.set(cv2.CAP_PROP_POS_FRAMES, good)
    count = good
    while count < reported and cap.grab():
        count += 1
    return max(count, 1)  # the first frame was read by the caller


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open a video file or frame folder once and return its verified :class:`VideoInfo` (no pixels kept).

    Raises:
        VideoReadError: it does not open, or its first frame does not decode.
    """
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        if not files:
            raise VideoReadError(path, "the folder holds no image files (frames)")
        try:
            first = read_image_rgb(files[0])
        except ImageReadError as err:
            raise VideoReadError(path, f"its first frame does not decode ({err})") from err
        height, width = first.shape[:2]
        return VideoInfo(path, len(files), width, height, None, tuple(files))
    cap = _open_capture(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoReadError(path, "it opens but no frame decodes")
        height, width = frame.shape[:2]
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        reported = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if reported <= 0:  # unknown (some streams): count them all, once
            count = 1
            while cap.grab():
                count += 1
        else:
            count = _verified_count(cap, reported)
        if reported > 0 and count < reported:
            # the frame the file was cut through can come back half decoded (FFmpeg's MJPEG decoder fills the rest
            # from the frame before): keep only the frames before it
            kept = max(count - 1, 1)
            log.warning(
                "video %s: the header says %d frames but decoding stops after %d; using the first %d (the last "
                "one decoded may be partial)",
                path,
                reported,
                count,
                kept,
            )
            count = kept
        return VideoInfo(path, count, width, height, fps)
    finally:
        cap.release()


def clip_span(length: int, stride: int) -> int:
    """Frames a clip of ``length`` frames ``stride`` apart covers, first to last inclusive."""
    return (length - 1) * stride + 1


def read_clip(info: VideoInfo, start: int, length: int, stride: int = 1) -> np.ndarray:
    """Frames ``start, start + stride, ...`` (``length`` of them) of one source as ``T x H x W x 3`` uint8 RGB.

    The file is opened for this clip only. Raises :class:`VideoReadError` when it no longer opens or a frame does
    not decode; ``good_frames`` then holds the index of the first frame that failed (the source's usable length).
    """
    if start < 0 or length < 1 or stride < 1:
        raise ValueError(f"need start >= 0, length >= 1, stride >= 1, got {start}, {length}, {stride}")
    indices = [start + k * stride for k in range(length)]
    frames: list[np.ndarray] = []
    if info.is_folder:
        for index in indices:
            if index >= len(info.frame_files):
                raise VideoReadError(info.path, f"it has no frame {index}", good_frames=len(info.frame_files))
            try:
                frame = read_image_rgb(info.frame_files[index])
            except ImageReadError as err:
                raise VideoReadError(info.path, f"frame {index}: {err.reason}", good_frames=index) from err
            if frame.shape[:2] != (info.height, info.width):
                h, w = frame.shape[:2]
                raise VideoReadError(
                    info.path,
                    f"frame {info.frame_files[index].name} is {w}x{h} but the first frame is "
                    f"{info.width}x{info.height}; every frame of a clip must have one size",
                    good_frames=index,
                )
            frames.append(frame)
        return np.stack(frames)
    cap = _open_capture(info.path)
    try:
        if start > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) != start:  # the backend could not seek: read up to it
                cap.release()
                cap = _open_capture(info.path)
                for skipped in range(start):
                    if not cap.grab():
                        raise VideoReadError(
                            info.path, f"frame {skipped} does not decode", good_frames=skipped
                        )
        position = start
        for index in indices:
            while position < index:
                if not cap.grab():
                    raise VideoReadError(info.path, f"frame {position} does not decode", good_frames=position)
                position += 1
            ok, frame = cap.read()
            if not ok or frame is None:
                raise VideoReadError(info.path, f"frame {index} does not decode", good_frames=index)
            frames.append(_rgb(frame))
            position += 1
    finally:
        cap.release()
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise VideoReadError(
            info.path, f"its frames change size within a clip ({sorted(shapes)})", good_frames=start
        )
    return np.stack(frames)


# --------------------------------------------------------------------------------------------------------------
# streaming
# --------------------------------------------------------------------------------------------------------------


class VideoFrames:
    """One video file or frame folder as a stream of RGB ``uint8`` ``H x W x 3`` frames, one decoded at a time.

    ``fps`` (``None`` for a frame folder), ``width``, ``height`` and ``reported_frames`` (the header's count, which
    may be wrong; the folder's file count) are known once opened. Iterating stops at the first frame that does not
    decode, with a warning when that is before the reported end. Use as a context manager (releases the file).

    Raises:
        VideoReadError: the source does not open, or its first frame does not decode (on construction).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._cap: cv2.VideoCapture | None = None
        self._files: list[Path] = []
        self._first: np.ndarray | None = None
        if self.path.is_dir():
            self._files = frame_files(self.path)
            if not self._files:
                raise VideoReadError(self.path, "the folder holds no image files (frames)")
            try:
                self._first = read_image_rgb(self._files[0])
            except ImageReadError as err:
                raise VideoReadError(self.path, f"its first frame does not decode ({err})") from err
            self.fps: float | None = None
            self.reported_frames = len(self._files)
        else:
            self._cap = _open_capture(self.path)
            ok, frame = self._cap.read()
            if not ok or frame is None:
                self.close()
                raise VideoReadError(self.path, "it opens but no frame decodes")
            self._first = _rgb(frame)
            self.fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or None
            self.reported_frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.height, self.width = self._first.shape[:2]

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._first is None:
            raise RuntimeError(f"the stream of {self.path} was already read or closed; open it again")
        first, self._first = self._first, None
        yield first
        count = 1
        while True:
            frame = self._next(count)
            if frame is None:
                break
            yield frame
            count += 1
        if count < self.reported_frames:
            log.warning(
                "video %s stopped decoding after %d of %d frames", self.path, count, self.reported_frames
            )
        self.close()

    def _next(self, index: int) -> np.ndarray | None:
        if self._cap is not None:
            ok, frame = self._cap.read()
            return _rgb(frame) if ok and frame is not None else None
        if index >= len(self._files):
            return None
        try:
            frame = read_image_rgb(self._files[index])
        except ImageReadError as err:
            log.warning("frame folder %s: %s", self.path, err)
            return None
        return frame if frame.shape[:2] == (self.height, self.width) else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> VideoFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_video(path: str | os.PathLike) -> VideoFrames:
    """Stream the frames of a video file or frame folder (see :class:`VideoFrames`)."""
    return VideoFrames(path)


__all__ = [
    "VIDEO_EXTENSIONS",
    "NoVideosFoundError",
    "VideoFrames",
    "VideoInfo",
    "VideoReadError",
    "clip_span",
    "frame_files",
    "list_videos",
    "natural_key",
    "open_video",
    "probe_video",
    "read_clip",
]
