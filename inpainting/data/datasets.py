"""Map-style dataset that yields one ``(image, mask)`` sample of the batch contract per index.

A sample is a dict::

    image  float32 tensor 3 x H x W in [-1, 1]
    mask   float32 tensor 1 x H x W in {0, 1}, 1 = missing
    index  int, the position in ``paths`` of the image actually returned
    path   str, that image's file

An evaluation dataset may present every image several times, each with its own fixed mask
(``masks_per_image=k``, the datamodule's ``eval_masks_per_image``): it then holds ``k * len(paths)`` samples,
and sample ``t`` is image ``i = t % len(paths)`` with its mask number ``j = t // len(paths)``. All images
come before any repeat, so the first ``len(paths)`` samples are exactly those of ``k=1`` and any prefix of the
dataset (a first batch, ``limit_val_batches``) spreads over different photos. ``index`` and ``path`` stay the
image's.

Masks come from one of two places:

* a **mask generator** ``gen(rng, height, width) -> uint8 H x W`` (see ``inpainting.data.masks``), drawn at the
  size of the transformed image, with

  - ``mask_seed`` an int (validation/test): ``rng = numpy.random.default_rng((mask_seed, index))``, so one image
    always gets one mask, whatever the run, machine, worker count or batch size; its further masks
    ``j >= 1`` (``masks_per_image > 1``) come from ``default_rng((mask_seed, index, j))``, so raising ``k``
    adds masks and keeps the ones before;
  - ``mask_seed=None`` (training): a fresh mask every draw, from
    ``SeedSequence((torch.initial_seed(), rank, index, draw))`` where ``torch.initial_seed()`` is the seed of the
    process serving the sample (in a DataLoader worker, torch's per-worker seed, which changes every epoch and
    which Lightning's ``seed_everything(seed, workers=True)`` re-derives from the seed, worker id and global
    rank), ``rank`` is the ``torch.distributed`` rank (0 without DDP) and ``draw`` counts the samples this copy of
    the dataset has served. The result is reproducible under ``seed_everything(seed, workers=True)`` for a fixed
    ``num_workers``, and differs across workers, ranks, epochs and repeated draws of one image. (Without any
    seeding torch starts every process with the same default seed, so runs repeat - like torch itself.) The same
    seed sequence also seeds the albumentations crop (``transform.set_random_seed``), since albumentations keeps
    its own random state that would otherwise be cloned into every worker.

* a **mask folder** ``mask_root``: each image is paired with a mask file, found by file stem (see
  :func:`match_mask_files`); image and mask must be the same size (``ValueError`` naming both files otherwise) and
  are cropped together by the transform.

Unreadable images (corrupt, truncated, deleted) do not stop training: the sample is replaced by the next readable
index (``index + 1``, wrapping around), deterministically. Each bad file is logged once, as a warning on the
``inpainting.data`` logger naming the file, and remembered in ``dataset.skipped`` (a set of paths) so it is not
read again. DataLoader workers hold their own copies of the dataset (``skipped`` in the main process stays
empty with ``num_workers > 0``), so the warning is deduplicated through a marker file per bad path in a
temporary folder the copies share: each file is logged once per dataset, whatever the workers and epochs; the
log is the record of every bad file. Only when every file fails does ``__getitem__`` raise
(:class:`NoReadableImagesError`).
"""

from __future__ import annotations

import hashlib
import logging
import numbers
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from inpainting.data.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    check_mask_size,
    list_images,
    mask_owner_stem,
    read_image_rgb,
    read_mask,
)
from inpainting.errors import InputError

log = logging.getLogger("inpainting.data")


class NoReadableImagesError(InputError, RuntimeError):
    """No file of a dataset could be read (each was logged by name as it failed)."""


MaskGenerator = Callable[[np.random.Generator, int, int], np.ndarray]


def match_mask_files(
    image_paths: Sequence[Path], image_root: str | os.PathLike, mask_root: str | os.PathLike
) -> list[Path]:
    """Pair every image with a mask file under ``mask_root``, matched by file stem.

    For an image ``<image_root>/<rel dir>/<stem>.<ext>`` the candidates are, in this order:

    1. ``<mask_root>/<rel dir>/<stem>.<any image ext>`` (a mirrored folder tree, e.g. ``masks/a/b.png``);
    2. ``<mask_root>/<rel dir>/<stem>_mask*.<any image ext>`` (LaMa style ``b_mask000.png``);
    3. the same two names directly in ``<mask_root>`` (a flat mask folder).

    Among several ``<stem>_mask*`` files the first in sorted order is used. Raises ``FileNotFoundError`` naming
    the image and the names tried when an image has no mask.
    """
    image_root = Path(image_root)
    mask_root = Path(mask_root)
    masks = list_images(mask_root, recursive=True, extensions=IMAGE_EXTENSIONS)
    exact: dict[tuple[str, str], Path] = {}
    suffixed: dict[tuple[str, str], Path] = {}
    for m in masks:  # sorted, so setdefault keeps the first match
        rel_dir = m.parent.relative_to(mask_root).as_posix()
        exact.setdefault((rel_dir, m.stem), m)
        owner = mask_owner_stem(m.stem)  # the one pairing rule: the stem before the last "_mask"
        if owner is not None:
            suffixed.setdefault((rel_dir, owner), m)
    out: list[Path] = []
    for path in image_paths:
        try:
            rel_dir = Path(path).parent.relative_to(image_root).as_posix()
        except ValueError:
            rel_dir = "."
        stem = Path(path).stem
        keys = [(rel_dir, stem), (".", stem)] if rel_dir != "." else [(".", stem)]
        match = None
        for key in keys:
            match = exact.get(key) or suffixed.get(key)
            if match is not None:
                break
        if match is None:
            tried = ", ".join(f"{d}/{stem}.<ext> or {d}/{stem}_mask*.<ext>" for d, _ in keys)
            raise FileNotFoundError(
                f"no mask file for image {path} under mask_root {mask_root} (looked for {tried})"
            )
        out.append(match)
    return out


def _distributed_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


class InpaintingDataset(Dataset):
    """Images from ``paths`` through ``transform``, each with a mask (see the module docstring).

    Args:
        paths: image files (their order defines ``index``).
        transform: an albumentations ``Compose`` (``inpainting.data.transforms``) called as
            ``transform(image=..., mask=...)``; ``None`` keeps images at their own size.
        mask_generator: ``gen(rng, height, width) -> uint8 H x W``; needed unless ``mask_root`` is given.
        mask_seed: ``None`` for training (fresh random masks); an int for fixed evaluation masks.
        mask_root: folder of mask files paired with the images by stem; replaces ``mask_generator``.
        image_root: folder the ``paths`` are relative to, for matching mirrored mask trees (default: their
            common parent folder).
        masks_per_image: evaluation only (an int ``mask_seed``, no ``mask_root``): present every image this
            many times, each with its own fixed mask, so a small evaluation set measures more than one hole
            per photo.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        transform: Callable | None,
        mask_generator: MaskGenerator | None = None,
        mask_seed: int | None = None,
        mask_root: str | os.PathLike | None = None,
        image_root: str | os.PathLike | None = None,
        masks_per_image: int = 1,
    ):
        self.paths = [Path(p) for p in paths]
        self.transform = transform
        self.mask_generator = mask_generator
        if mask_seed is not None:
            if isinstance(mask_seed, bool) or not isinstance(mask_seed, numbers.Integral) or mask_seed < 0:
                raise ValueError(
                    f"mask_seed must be None (training masks) or a non-negative int, got {mask_seed!r}"
                )
            mask_seed = int(mask_seed)
        self.mask_seed = mask_seed
        self.mask_root = Path(mask_root) if mask_root is not None else None
        if (
            isinstance(masks_per_image, bool)
            or not isinstance(masks_per_image, numbers.Integral)
            or masks_per_image < 1
        ):
            raise ValueError(f"masks_per_image must be a positive integer, got {masks_per_image!r}")
        self.masks_per_image = int(masks_per_image)
        if self.masks_per_image > 1 and (mask_seed is None or self.mask_root is not None):
            raise ValueError(
                "masks_per_image > 1 needs generated evaluation masks (an int mask_seed and no mask_root): "
                "training masks are fresh every draw and a mask file is one mask per image"
            )
        if self.mask_root is None and mask_generator is None:
            raise ValueError(
                "InpaintingDataset needs a mask_generator (callable(rng, height, width)) or a mask_root"
            )
        if mask_generator is not None and not callable(mask_generator):
            raise ValueError(f"mask_generator must be callable(rng, height, width), got {mask_generator!r}")
        self.mask_paths: list[Path] | None = None
        if self.mask_root is not None and self.paths:
            if image_root is None:
                image_root = Path(os.path.commonpath([str(p.parent) for p in self.paths]))
            self.mask_paths = match_mask_files(self.paths, image_root, self.mask_root)
        self.skipped: set[str] = set()
        self._draws = 0
        # shared by the copies in DataLoader workers (forked or pickled): one warning per bad file
        self._reported_dir = tempfile.mkdtemp(prefix="inpainting-skipped-")
        weakref.finalize(self, shutil.rmtree, self._reported_dir, True)

    def _first_report(self, key: str) -> bool:
        """True once per path across this dataset's copies (a marker file created exclusively)."""
        marker = os.path.join(self._reported_dir, hashlib.sha1(key.encode()).hexdigest())
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        except OSError:  # the folder is gone (the main process ended): report rather than stay silent
            return True
        return True

    def __len__(self) -> int:
        return len(self.paths) * self.masks_per_image

    def __repr__(self) -> str:
        masks = f"mask_root={self.mask_root}" if self.mask_root else f"mask_generator={self.mask_generator!r}"
        mode = "train" if self.mask_seed is None else f"mask_seed={self.mask_seed}"
        images = f"{len(self.paths)} images" + (
            f" x {self.masks_per_image} masks" if self.masks_per_image > 1 else ""
        )
        return f"{type(self).__name__}({images}, {mode}, {masks})"

    # -- randomness -------------------------------------------------------------------------------------------

    def _seed_sequence(self, index: int, repeat: int = 0) -> np.random.SeedSequence:
        if self.mask_seed is not None:  # mask 0 keeps the one-mask-per-image key (see the module docstring)
            return np.random.SeedSequence(
                (self.mask_seed, index) if repeat == 0 else (self.mask_seed, index, repeat)
            )
        self._draws += 1
        return np.random.SeedSequence((torch.initial_seed(), _distributed_rank(), index, self._draws))

    # -- loading ----------------------------------------------------------------------------------------------

    def _load(self, index: int) -> tuple[int, np.ndarray]:
        """Read image ``index``, or the next readable one; returns ``(index, image)``."""
        n = len(self.paths)
        for step in range(n):
            i = (index + step) % n
            key = str(self.paths[i])
            if key in self.skipped:
                continue
            try:
                return i, read_image_rgb(self.paths[i])
            except ImageReadError as err:
                self.skipped.add(key)
                if self._first_report(key):
                    log.warning(
                        "skipping unreadable image %s (%s); using the next readable image instead",
                        key,
                        err.reason,
                    )
        raise NoReadableImagesError(
            f"none of the {n} image files of this dataset could be read (first: {self.paths[0] if n else None}); "
            "see the warnings above for each file"
        )

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        # sample t is image t % images with its mask number t // images (see the module docstring)
        repeat, index = divmod(int(index) % n, len(self.paths))
        index, image = self._load(index)
        path = self.paths[index]

        seq = self._seed_sequence(index, repeat)
        # the contract: evaluation masks come from default_rng((mask_seed, index)) itself
        mask_rng = np.random.default_rng(seq)
        crop_seed = int(np.random.SeedSequence(seq.entropy, spawn_key=(1,)).generate_state(1)[0])

        file_mask = None
        if self.mask_paths is not None:
            mask_path = self.mask_paths[index]
            file_mask = read_mask(mask_path)
            check_mask_size(image, file_mask, path, mask_path)

        if self.transform is not None:
            if hasattr(self.transform, "set_random_seed"):
                self.transform.set_random_seed(crop_seed)
            out = (
                self.transform(image=image, mask=file_mask)
                if file_mask is not None
                else self.transform(image=image)
            )
            image = out["image"]
            if file_mask is not None:
                file_mask = out["mask"]

        h, w = image.shape[:2]
        if file_mask is not None:
            mask = (np.asarray(file_mask) > 0).astype(np.float32)
        else:
            generated = np.asarray(self.mask_generator(mask_rng, h, w))
            if generated.shape != (h, w):
                raise ValueError(
                    f"mask_generator {self.mask_generator!r} returned shape {generated.shape} for an image of "
                    f"{h}x{w}; it must return an (height, width) array"
                )
            mask = (generated > 0).astype(np.float32)

        chw = np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1), dtype=np.float32)
        image_t = torch.from_numpy(chw).div_(127.5).sub_(1.0)
        mask_t = torch.from_numpy(np.ascontiguousarray(mask))[None]
        return {"image": image_t, "mask": mask_t, "index": index, "path": str(path)}
