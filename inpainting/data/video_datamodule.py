"""LightningDataModule over videos: batches of clips ``{image: B x T x 3 x H x W, mask: B x T x 1 x H x W, ...}``.

Sources (see ``conf/data/video.yaml`` and ``video_sample.yaml``):

* ``root``: a folder searched (recursively) for video files (:data:`inpainting.data.video.VIDEO_EXTENSIONS`) and
  frame folders (a folder of numbered images is one video), :func:`inpainting.data.video.list_videos`;
* ``synthetic_motion=true``: still photos turned into clips by a smooth random camera path
  (:func:`inpainting.data.video_datasets.synthetic_clip`), from ``photo_root`` (any folder of images) or, with
  ``sample=true``, the embedded sample photos (:mod:`inpainting.data.sample`, read where they are installed), so a
  video model trains offline without any video.

Splits are **by video, never by clip**: the sources are listed in a machine-independent order and split with
:func:`inpainting.data.datamodule.split_paths` (``val_fraction``, ``test_fraction``, ``split_seed``); videos and
photos are split separately, with the same fractions and seed, so no video or photo appears in two splits.
Training serves every clip start of its videos (random clip, random crop, fresh mask); validation and test serve
``clips_per_video`` evenly spaced clips per video (and as many camera paths per photo) with fixed masks from
``default_rng((mask_seed, index))``. ``predict_dataloader`` serves the test split.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from inpainting.data.datamodule import SplitLoaders, _check_int, split_paths
from inpainting.data.images import NoImagesFoundError, list_images
from inpainting.data.sample import sample_sources
from inpainting.data.transforms import check_image_size
from inpainting.data.video import list_videos
from inpainting.data.video_datasets import VideoClipDataset
from inpainting.data.video_masks import VideoMaskGenerator
from inpainting.errors import ConfigError, InputError

log = logging.getLogger("inpainting.data")

SPLITS = ("train", "val", "test")


def check_video_mask_generator(generator: object, name: str) -> None:
    """Draw one tiny clip mask so that an image mask generator (``mask=mixed``, the training default) is refused in
    ``setup``, naming the option, rather than deep inside a DataLoader worker. (Not in ``__init__``: composing
    ``data=video`` with the default mask group must still instantiate, e.g. to print or check the config.)"""
    hint = "a video mask generator gen(rng, frames, height, width) -> uint8 frames x height x width"
    hint += " (Hydra: mask=video_mixed, video_object or video_static)"
    if not callable(generator):
        raise ConfigError(f"{name} must be {hint}, got {generator!r}")
    try:
        shape = np.asarray(generator(np.random.default_rng(0), 2, 32, 32)).shape
    except TypeError as err:
        raise ConfigError(f"{name} must be {hint}; {type(generator).__name__} is not ({err})") from err
    if shape != (2, 32, 32):
        raise ConfigError(
            f"{name} must be {hint}; {type(generator).__name__} gave shape {shape} for 2 x 32 x 32"
        )


class VideoDataModule(SplitLoaders):
    """Videos (and/or still photos with synthetic motion) -> clip batches (see the module docstring).

    Args:
        root: folder of videos and frame folders (``None`` with ``synthetic_motion`` only).
        clip_length: frames per clip (``T``). frame_stride: take every ``frame_stride``-th frame.
        image_size: side of the square frames (pixels).
        batch_size: clips per batch (per device under DDP). num_workers: DataLoader worker processes.
        pin_memory, persistent_workers: as for :class:`inpainting.data.datamodule.InpaintingDataModule`.
        synthetic_motion: also make clips from still photos by a random camera path.
        photo_root: folder of still photos for synthetic motion. sample: use the embedded sample photos instead.
        recursive: search sub-folders of ``root`` (and ``photo_root``).
        val_fraction, test_fraction, split_seed: the seeded split by video.
        val_root, test_root: pre-split videos for validation / test; with either set, every video under ``root``
            trains (the fractions still split the photos).
        clips_per_video: validation/test clips per video (evenly spaced) and per photo.
        mask_generator: video mask generator ``gen(rng, frames, height, width) -> uint8 T x H x W`` for training.
        eval_mask_generator: the one for validation/test (default: ``mask_generator``).
        mask_seed: seed of the fixed evaluation masks, ``default_rng((mask_seed, index))``.
    """

    def __init__(
        self,
        root: str | None = None,
        clip_length: int = 5,
        frame_stride: int = 1,
        image_size: int = 256,
        batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        synthetic_motion: bool = False,
        photo_root: str | None = None,
        val_root: str | None = None,
        test_root: str | None = None,
        sample: bool = False,
        recursive: bool = True,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        clips_per_video: int = 4,
        mask_generator: VideoMaskGenerator | None = None,
        eval_mask_generator: VideoMaskGenerator | None = None,
        mask_seed: int = 1234,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["mask_generator", "eval_mask_generator"], logger=False)
        self.image_size = check_image_size(image_size)
        self.clip_length = _check_int(clip_length, "clip_length", 1, "frames per clip")
        self.frame_stride = _check_int(frame_stride, "frame_stride", 1, "1 = consecutive frames")
        self.clips_per_video = _check_int(
            clips_per_video, "clips_per_video", 1, "validation/test clips per video"
        )
        self._set_split_options(
            batch_size, num_workers, mask_seed, split_seed, val_fraction, test_fraction, "clips"
        )
        self.synthetic_motion = bool(synthetic_motion)
        self.sample = bool(sample)
        if photo_root is not None and sample:
            raise ConfigError(
                f"give photo_root (your photos) or sample=true (the embedded photos), not both: photo_root={photo_root!r}"
            )
        if (photo_root is not None or self.sample) and not self.synthetic_motion:
            raise ConfigError(
                "photo_root and sample=true give still photos for synthetic_motion; set synthetic_motion=true"
            )
        if self.synthetic_motion and photo_root is None and not self.sample:
            raise ConfigError(
                "synthetic_motion=true needs still photos: set photo_root (a folder of images) or sample=true"
            )
        if root is None and not self.synthetic_motion:
            raise ConfigError(
                "no videos configured: set root (a folder of videos / frame folders) or synthetic_motion=true"
            )
        for name, fn in (("mask_generator", mask_generator), ("eval_mask_generator", eval_mask_generator)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"{name} must be callable(rng, frames, height, width) -> mask, got {fn!r}")
        self.root = root
        self.val_root = val_root
        self.test_root = test_root
        self.photo_root = photo_root
        self.recursive = bool(recursive)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.mask_generator = mask_generator
        self.eval_mask_generator = eval_mask_generator if eval_mask_generator is not None else mask_generator

        self.splits: dict[str, dict[str, list[Path]]] | None = None
        self.train_dataset: VideoClipDataset | None = None
        self.val_dataset: VideoClipDataset | None = None
        self.test_dataset: VideoClipDataset | None = None

    # -- files ------------------------------------------------------------------------------------------------

    def _photos(self) -> list[Path]:
        if not self.synthetic_motion:
            return []
        if self.photo_root is not None:
            try:
                return list_images(self.photo_root, recursive=self.recursive)
            except (FileNotFoundError, NotADirectoryError, NoImagesFoundError) as err:
                raise InputError(f"photo_root: {err}") from err
        found = sample_sources()
        if not found:
            raise InputError(
                "sample=true: no embedded sample photos are installed (scikit-image, scikit-learn, matplotlib); "
                "set photo_root to a folder of photos instead"
            )
        return [src for src, _, _ in sorted(found, key=lambda f: f[1])]  # the order data=sample lists them in

    def _compute_splits(self) -> dict[str, dict[str, list[Path]]]:
        splits: dict[str, dict[str, list[Path]]] = {split: {"videos": [], "photos": []} for split in SPLITS}
        sources = {"photos": self._photos()}
        if self.root is not None:
            try:
                sources["videos"] = list_videos(self.root, recursive=self.recursive)
            except (FileNotFoundError, NotADirectoryError) as err:
                raise InputError(f"root: {err}") from err
        for kind, paths in sources.items():
            if kind == "videos" and (self.val_root or self.test_root):
                continue  # pre-split videos: every video under root trains
            parts = split_paths(paths, self.val_fraction, self.test_fraction, self.split_seed)
            for split, part in zip(SPLITS, parts, strict=True):
                splits[split][kind] = part
        if self.val_root or self.test_root:
            splits["train"]["videos"] = sources.get("videos", [])
            for split, folder in (("val", self.val_root), ("test", self.test_root)):
                if folder is not None:
                    try:
                        splits[split]["videos"] = list_videos(folder, recursive=self.recursive)
                    except (FileNotFoundError, NotADirectoryError) as err:
                        raise InputError(f"{split}_root: {err}") from err
        log.info(
            "data: %s videos, %s photos (train / val / test)",
            " / ".join(str(len(splits[s]["videos"])) for s in SPLITS),
            " / ".join(str(len(splits[s]["photos"])) for s in SPLITS),
        )
        return splits

    # -- datasets ---------------------------------------------------------------------------------------------

    def _dataset(self, split: str) -> VideoClipDataset:
        generator = self.mask_generator if split == "train" else self.eval_mask_generator
        if generator is None:
            raise ConfigError(
                f"the {split} split needs masks: set mask_generator / eval_mask_generator to a video mask generator "
                "(Hydra: mask=video_object, video_static or video_mixed)"
            )
        check_video_mask_generator(generator, "mask_generator" if split == "train" else "eval_mask_generator")
        dataset = VideoClipDataset(
            self.splits[split]["videos"],
            generator,
            clip_length=self.clip_length,
            frame_stride=self.frame_stride,
            image_size=self.image_size,
            mask_seed=None if split == "train" else self.mask_seed,
            clips_per_video=self.clips_per_video,
            photos=self.splits[split]["photos"],
        )
        if len(dataset) == 0:
            log.warning("data: the %s split has no clips", split)
        return dataset

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets ``stage`` needs (``fit``: train + val, ``validate``: val, ``test``/``predict``: test)."""
        if self.splits is None:
            self.splits = self._compute_splits()
        if stage in (None, "fit") and self.train_dataset is None:
            self.train_dataset = self._dataset("train")
            if len(self.train_dataset) == 0:
                raise ConfigError(
                    f"fitting needs training clips: no video under root={self.root!r} has {self.clip_length} frames "
                    f"at frame_stride={self.frame_stride} (see the warnings above), and no photos are configured"
                )
        if stage in (None, "fit", "validate") and self.val_dataset is None:
            self.val_dataset = self._dataset("val")
        if stage in (None, "test", "predict") and self.test_dataset is None:
            self.test_dataset = self._dataset("test")

    # -- loaders ----------------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        counts = {k: {kind: len(v) for kind, v in parts.items()} for k, parts in (self.splits or {}).items()}
        return f"{type(self).__name__}(root={self.root!r}, clip_length={self.clip_length}, splits={counts})"


__all__ = ["VideoDataModule"]
