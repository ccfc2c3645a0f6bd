"""Map-style dataset of video clips, one sample of the video batch contract per index.

A sample is a dict (the DataLoader stacks ``B`` of them)::

    image  float32 tensor T x 3 x H x W in [-1, 1]   (T = clip_length, H = W = image_size)
    mask   float32 tensor T x 1 x H x W in {0, 1}, 1 = missing
    index  int, the clip's position in the dataset (of the clip actually returned)
    path   str, the video file, frame folder or photo it came from

Clips are indexed by ``(source, start frame)`` from each source's verified frame count (never its pixels): a clip
is ``clip_length`` frames ``frame_stride`` apart. Training (``mask_seed=None``) serves every start of every video
(shuffling makes it a random clip), one random crop of ``image_size`` shared by all frames of a clip
(:func:`inpainting.data.transforms.train_transform` on all frames at once, flip included) and a fresh mask; the
randomness comes from ``SeedSequence((torch.initial_seed(), rank, index, draw))`` as in
:class:`inpainting.data.datasets.InpaintingDataset`. Evaluation (``mask_seed`` an int) serves ``clips_per_video``
evenly spaced starts per video, the deterministic centre crop (``eval_transform``) and the mask drawn from
``default_rng((mask_seed, index))``.

Still photos (``photos``) become clips by a smooth random camera path (:func:`synthetic_clip`): one clip per photo
per epoch in training, ``clips_per_video`` per photo in evaluation, each with its path seeded by its index.

A source that fails while reading (a file deleted or damaged since it was indexed, a frame folder with a broken
frame) is logged once as a warning naming it; a source that stopped decoding at frame ``k`` keeps its clips that end
before ``k``, one that does not open any more is skipped, and the sample is replaced by the next usable clip
(``index + 1``, wrapping around). Only when no clip is left does ``__getitem__`` raise. Sources that do not open at
all are found (and logged) once, when the dataset is built; DataLoader workers hold their own copies, so a source
that breaks later is logged by each worker that meets it, as for images (:mod:`inpainting.data.datasets`).
"""

from __future__ import annotations

import bisect
import logging
import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from inpainting.data.datasets import _distributed_rank
from inpainting.data.images import ImageReadError, read_image_rgb
from inpainting.data.transforms import RESIZE, check_image_size, eval_transform, train_transform
from inpainting.data.video import VideoInfo, VideoReadError, clip_span, probe_video, read_clip
from inpainting.data.video_masks import VideoMaskGenerator
from inpainting.errors import ConfigError

log = logging.getLogger("inpainting.data")


# --------------------------------------------------------------------------------------------------------------
# synthetic camera motion over a still photo
# --------------------------------------------------------------------------------------------------------------


def camera_path(
    rng: np.random.Generator,
    frames: int,
    size: int,
    photo_width: int,
    photo_height: int,
    max_pan: float = 0.03,
    pan_acceleration: float = 0.003,
    max_zoom: float = 0.02,
    max_rotation: float = 3.0,
    max_turn: float = 0.75,
) -> np.ndarray:
    """``frames`` affine matrices (2 x 3) mapping output pixel indices to photo pixel indices, for
    ``cv2.warpAffine(..., flags=WARP_INVERSE_MAP)``: a pan (speed up to ``max_pan`` x ``size`` per frame, nudged by a
    small acceleration), a steady zoom (up to ``max_zoom`` per frame) and a small rotation (start within
    ``+- max_rotation`` degrees, turning up to ``max_turn`` degrees per frame). The largest zoom level at which every
    frame's window stays inside the photo is computed first, so no frame shows a border.
    """
    t = np.arange(frames, dtype=np.float64)
    heading = rng.uniform(0, 2 * math.pi)
    velocity = rng.uniform(0.1, 1.0) * max_pan * size * np.array([math.cos(heading), math.sin(heading)])
    accel = rng.normal(0.0, pan_acceleration * size, size=(frames, 2))
    accel[0] = 0.0
    velocities = velocity + np.cumsum(accel, axis=0)
    pan = np.vstack([np.zeros(2), np.cumsum(velocities[:-1], axis=0)])  # frame t's offset, output pixels
    zoom = np.exp(rng.uniform(-max_zoom, max_zoom) * t)
    angle = np.radians(rng.uniform(-max_rotation, max_rotation) + rng.uniform(-max_turn, max_turn) * t)
    extent = size / 2 * zoom * (np.abs(np.cos(angle)) + np.abs(np.sin(angle)))  # half-width of each window
    low = (pan - extent[:, None]).min(axis=0)
    high = (pan + extent[:, None]).max(axis=0)
    fit = min(photo_width / (high[0] - low[0]), photo_height / (high[1] - low[1]))  # photo px per output px
    scale = fit * rng.uniform(0.75, 1.0)
    start = np.array(
        [rng.uniform(-low[k] * scale, (photo_width, photo_height)[k] - high[k] * scale) for k in range(2)]
    )
    matrices = np.empty((frames, 2, 3))
    for k in range(frames):
        cos, sin = math.cos(angle[k]), math.sin(angle[k])
        linear = scale * zoom[k] * np.array([[cos, -sin], [sin, cos]])
        centre = start + scale * pan[k]
        # photo edge coordinate = centre + linear @ (output edge coordinate - size / 2); pixel index = edge - 0.5
        matrices[k, :, :2] = linear
        matrices[k, :, 2] = centre + linear @ (np.full(2, 0.5 - size / 2)) - 0.5
    return matrices


def synthetic_clip(
    rng: np.random.Generator, photo: np.ndarray, frames: int, size: int, flip: bool = False
) -> np.ndarray:
    """A ``frames x size x size x 3`` uint8 clip of a camera moving over ``photo`` (see :func:`camera_path`).

    The photo is first shrunk (``INTER_AREA``) to a short side of ``2 * size`` when larger, so the warp samples it at
    about its own resolution instead of aliasing; ``flip`` mirrors it first (training).
    """
    if flip:
        photo = photo[:, ::-1]
    height, width = photo.shape[:2]
    shrink = 2 * size / min(height, width)
    if shrink < 1:
        photo = cv2.resize(
            np.ascontiguousarray(photo),
            (max(1, round(width * shrink)), max(1, round(height * shrink))),
            interpolation=cv2.INTER_AREA,
        )
    height, width = photo.shape[:2]
    out = np.empty((frames, size, size, 3), np.uint8)
    for k, matrix in enumerate(camera_path(rng, frames, size, width, height)):
        out[k] = cv2.warpAffine(
            np.ascontiguousarray(photo),
            matrix,
            (size, size),
            flags=RESIZE["interpolation"] | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,  # only ever reached by half a pixel of rounding
        )
    return out


# --------------------------------------------------------------------------------------------------------------
# the dataset
# --------------------------------------------------------------------------------------------------------------


def evenly_spaced_starts(frames: int, span: int, count: int) -> list[int]:
    """Up to ``count`` distinct starts spread from the first to the last clip that fits in ``frames`` frames."""
    last = frames - span
    if last < 0:
        return []
    return sorted({round(v) for v in np.linspace(0, last, count)}) if count > 1 else [last // 2]


class VideoClipDataset(Dataset):
    """Clips from videos (files and frame folders) and, optionally, synthetic clips of still photos.

    Args:
        videos: video files / frame folders (probed here, once: one that does not open is logged and skipped) or
            already probed :class:`VideoInfo`.
        photos: still photos for synthetic camera motion.
        clip_length: frames per clip (``T``). frame_stride: take every ``frame_stride``-th frame.
        image_size: side of the square frames.
        mask_generator: video mask generator ``gen(rng, frames, height, width) -> uint8 T x H x W``.
        mask_seed: ``None`` for training; an int for the fixed evaluation clips and masks.
        clips_per_video: evaluation clips per video (evenly spaced) and per photo (different camera paths).
    """

    def __init__(
        self,
        videos: Sequence[str | os.PathLike | VideoInfo],
        mask_generator: VideoMaskGenerator,
        clip_length: int = 5,
        frame_stride: int = 1,
        image_size: int = 256,
        mask_seed: int | None = None,
        clips_per_video: int = 4,
        photos: Sequence[str | os.PathLike] = (),
    ):
        for name, value in (
            ("clip_length", clip_length),
            ("frame_stride", frame_stride),
            ("clips_per_video", clips_per_video),
        ):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if mask_seed is not None and (
            isinstance(mask_seed, bool) or not isinstance(mask_seed, numbers.Integral) or mask_seed < 0
        ):
            raise ConfigError(f"mask_seed must be None (training) or a non-negative int, got {mask_seed!r}")
        if not callable(mask_generator):
            raise ConfigError(
                f"mask_generator must be callable(rng, frames, height, width) -> mask, got {mask_generator!r}"
            )
        self.clip_length, self.frame_stride = int(clip_length), int(frame_stride)
        self.image_size = check_image_size(image_size)
        self.mask_generator = mask_generator
        self.mask_seed = None if mask_seed is None else int(mask_seed)
        self.clips_per_video = int(clips_per_video)
        self.span = clip_span(self.clip_length, self.frame_stride)
        self.transform = (
            train_transform(self.image_size) if self.training else eval_transform(self.image_size)
        )

        self.videos: list[VideoInfo] = []
        for video in videos:
            info = video if isinstance(video, VideoInfo) else self._probe(Path(video))
            if info is None:
                continue
            if info.frames < self.span:
                log.warning(
                    "skipping video %s: %d frames, fewer than a clip of %d frames at stride %d spans (%d)",
                    info.path,
                    info.frames,
                    self.clip_length,
                    self.frame_stride,
                    self.span,
                )
                continue
            self.videos.append(info)
        self.photos = [Path(p) for p in photos]
        # per source: its starts (a range while training: every start; a short list in evaluation)
        self._starts: list[Sequence[int]] = []
        for info in self.videos:
            last = info.frames - self.span
            self._starts.append(
                range(last + 1)
                if self.training
                else evenly_spaced_starts(info.frames, self.span, self.clips_per_video)
            )
        self._starts.extend(range(1 if self.training else self.clips_per_video) for _ in self.photos)
        self._offsets = np.cumsum([0] + [len(s) for s in self._starts]).tolist()
        self.good_frames: dict[int, int] = {}  # source -> frames usable, lowered when a read fails midway
        self.skipped: set[str] = set()
        self._draws = 0

    @property
    def training(self) -> bool:
        return self.mask_seed is None

    @staticmethod
    def _probe(path: Path) -> VideoInfo | None:
        try:
            return probe_video(path)
        except VideoReadError as err:
            log.warning("skipping unreadable video %s (%s)", err.path, err.reason)
            return None

    def __len__(self) -> int:
        return self._offsets[-1]

    def __repr__(self) -> str:
        mode = "train" if self.training else f"mask_seed={self.mask_seed}"
        return (
            f"{type(self).__name__}({len(self)} clips of {self.clip_length} frames from {len(self.videos)} videos and "
            f"{len(self.photos)} photos, {mode})"
        )

    def locate(self, index: int) -> tuple[int, int]:
        """``(source, start)`` of clip ``index``; sources are the videos, then the photos."""
        source = bisect.bisect_right(self._offsets, index) - 1
        return source, self._starts[source][index - self._offsets[source]]

    def source_path(self, source: int) -> Path:
        return (
            self.videos[source].path if source < len(self.videos) else self.photos[source - len(self.videos)]
        )

    # -- randomness (as InpaintingDataset) --------------------------------------------------------------------

    def _seed_sequence(self, index: int) -> np.random.SeedSequence:
        if self.mask_seed is not None:
            return np.random.SeedSequence((self.mask_seed, index))
        self._draws += 1
        return np.random.SeedSequence((torch.initial_seed(), _distributed_rank(), index, self._draws))

    # -- loading ----------------------------------------------------------------------------------------------

    def _frames(self, source: int, start: int, rng: np.random.Generator, aug_seed: int) -> np.ndarray:
        if source >= len(self.videos):
            photo = read_image_rgb(self.photos[source - len(self.videos)])
            flip = self.training and bool(rng.random() < 0.5)
            return synthetic_clip(rng, photo, self.clip_length, self.image_size, flip=flip)
        frames = read_clip(self.videos[source], start, self.clip_length, self.frame_stride)
        self.transform.set_random_seed(aug_seed)
        return np.asarray(self.transform(images=frames)["images"])

    def _usable(self, source: int, start: int) -> bool:
        if str(self.source_path(source)) in self.skipped:
            return False
        return source >= len(self.videos) or start + self.span <= self.good_frames.get(
            source, self.videos[source].frames
        )

    def _load(self, index: int) -> tuple[int, int, np.random.SeedSequence, np.ndarray]:
        n = len(self)
        for step in range(n):
            i = (index + step) % n
            source, start = self.locate(i)
            if not self._usable(source, start):
                continue
            seq = self._seed_sequence(i)
            aug = np.random.SeedSequence(seq.entropy, spawn_key=(1,))
            try:
                return (
                    i,
                    source,
                    seq,
                    self._frames(source, start, np.random.default_rng(aug), int(aug.generate_state(1)[0])),
                )
            except (VideoReadError, ImageReadError) as err:
                self._failed(source, err)
        raise RuntimeError(
            f"none of the {n} clips of this dataset could be read (first source: "
            f"{self.source_path(0) if self._starts else None}); see the warnings above for each file"
        )

    def _failed(self, source: int, err: VideoReadError | ImageReadError) -> None:
        path = str(self.source_path(source))
        good = getattr(err, "good_frames", None)
        first_time = path not in self.skipped and source not in self.good_frames
        if good is not None and good >= self.span:
            self.good_frames[source] = min(good, self.good_frames.get(source, good))
            what = f"keeping its first {good} frames"
        else:
            self.skipped.add(path)
            what = "skipping it"
        if first_time:
            log.warning("video source %s failed while reading (%s); %s", path, err, what)

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} clips")
        index, source, seq, frames = self._load(int(index) % n)
        size = self.image_size
        # the contract: evaluation masks come from default_rng((mask_seed, index)) itself
        mask = np.asarray(self.mask_generator(np.random.default_rng(seq), self.clip_length, size, size))
        if mask.shape != (self.clip_length, size, size):
            raise ConfigError(
                f"mask_generator {self.mask_generator!r} returned shape {mask.shape} for a clip of "
                f"{self.clip_length}x{size}x{size}; it must be a video mask generator gen(rng, frames, height, width) "
                "-> (frames, height, width) (Hydra: mask=video_object, video_static or video_mixed)"
            )
        tchw = np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32)
        image = torch.from_numpy(tchw).div_(127.5).sub_(1.0)
        mask_t = torch.from_numpy((mask > 0).astype(np.float32))[:, None]
        return {"image": image, "mask": mask_t, "index": index, "path": str(self.source_path(source))}


__all__ = ["VideoClipDataset", "camera_path", "evenly_spaced_starts", "synthetic_clip"]
