"""LightningDataModule over folders of images (see ``conf/data/*.yaml``).

Where each split comes from:

* ``train``: ``train_root`` if given, else ``root``;
* ``val`` / ``test``: ``val_root`` / ``test_root`` if given, else carved out of the train source by a seeded
  split by file (``val_fraction``, ``test_fraction``, ``split_seed``): the files are listed in a
  machine-independent order (sorted relative path) and permuted with ``numpy.random.default_rng(split_seed)``.
  At least one validation image is carved out when the source holds two or more images (and ``val_fraction > 0``),
  at least one test image when it holds three or more (and ``test_fraction > 0``); training always keeps one.

So ``root=...`` alone splits one folder; ``train_root/val_root/test_root`` use pre-split folders; mixing
(``train_root`` + ``test_root``, val carved from train) works too. ``root`` and ``train_root`` together are
ambiguous and rejected. With only ``val_root``/``test_root`` the module serves evaluation but not fitting.

Masks: training uses ``mask_generator`` with fresh random masks; validation, test and predict use
``eval_mask_generator`` (default: ``mask_generator``) with ``default_rng((mask_seed, index))`` where ``index`` is
the image's position in its split, or, when ``mask_root`` is set, fixed mask files paired by name
(``inpainting.data.datasets.match_mask_files``) for those evaluation splits. Training masks always come from the
generator: a folder of masks to *sample* from in training is a mask generator (``conf/mask``), not this option.

``eval_masks_per_image=k`` serves every validation/test image ``k`` times, each with its own fixed generated
mask (``k * images`` samples; the rule is in ``inpainting.data.datasets``). Why: a few photos with one hole
each measure those holes more than the model, so a small validation set needs several masks per photo to show
learning or to pick the best checkpoint. ``predict_dataloader`` serves these repeats too.

``predict_dataloader`` serves the test split. Under DDP Lightning wraps every loader in a ``DistributedSampler``.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from inpainting.data.datasets import InpaintingDataset, MaskGenerator
from inpainting.data.images import NoImagesFoundError, list_images
from inpainting.data.sample import write_sample_images
from inpainting.data.transforms import (
    check_image_size,
    eval_transform,
    multiscale_train_transform,
    train_transform,
)
from inpainting.errors import ConfigError

log = logging.getLogger("inpainting.data")


def _check_int(value: object, name: str, minimum: int, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        accepted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{name} must be {accepted} ({meaning}), got {value!r}")
    return int(value)


def _check_fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1) (the share of images held out), got {value!r}")
    return float(value)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a SLURM or container limit)."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def _cap_workers(num_workers: int) -> int:
    """More DataLoader workers than cores only add processes and memory: cap them with a warning."""
    cores = available_cores()
    if num_workers > cores:
        log.warning("data: num_workers=%d capped at the %d available CPU cores", num_workers, cores)
        return cores
    return num_workers


def split_paths(
    paths: list[Path], val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[Path], list[Path], list[Path]]:
    """Seeded split by file into ``(train, val, test)``; each part keeps the input order (see the module docs)."""
    n = len(paths)
    n_val = round(n * val_fraction) if val_fraction > 0 else 0
    n_test = round(n * test_fraction) if test_fraction > 0 else 0
    if val_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    if test_fraction > 0 and n >= 3:
        n_test = max(n_test, 1)
    cap = max(n - 1, 0)  # training keeps at least one image; validation is served before test
    n_val = min(n_val, cap)
    n_test = min(n_test, cap - n_val)
    order = np.random.default_rng(seed).permutation(n)
    val_idx = set(order[:n_val].tolist())
    test_idx = set(order[n_val : n_val + n_test].tolist())
    train = [p for i, p in enumerate(paths) if i not in val_idx and i not in test_idx]
    val = [p for i, p in enumerate(paths) if i in val_idx]
    test = [p for i, p in enumerate(paths) if i in test_idx]
    return train, val, test


class SplitLoaders(L.LightningDataModule):
    """The dataloaders of the train/val/test datasets a subclass's ``setup`` builds, for images and clips alike:
    one rule for shuffling, batching and dropping the ragged last training batch (only while every rank keeps one
    whole batch); ``predict_dataloader`` serves the test split."""

    batch_size: int
    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    train_dataset: Dataset | None = None
    val_dataset: Dataset | None = None
    test_dataset: Dataset | None = None

    def _set_split_options(
        self,
        batch_size: object,
        num_workers: object,
        mask_seed: object,
        split_seed: object,
        val_fraction: object,
        test_fraction: object,
        items: str,
    ) -> None:
        """Check and set the options every datamodule shares (``items``: what a batch holds, images or clips);
        workers are capped at the cores this process may use."""
        self.batch_size = _check_int(batch_size, "batch_size", 1, f"{items} per batch")
        self.num_workers = _cap_workers(
            _check_int(num_workers, "num_workers", 0, "DataLoader worker processes, 0 = none")
        )
        self.mask_seed = _check_int(mask_seed, "mask_seed", 0, "seed of the fixed evaluation masks")
        self.split_seed = _check_int(split_seed, "split_seed", 0, "seed of the train/val/test split")
        self.val_fraction = _check_fraction(val_fraction, "val_fraction")
        self.test_fraction = _check_fraction(test_fraction, "test_fraction")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                f"val_fraction + test_fraction must be below 1 so training keeps some, "
                f"got {self.val_fraction} + {self.test_fraction}"
            )

    def _world_size(self) -> int:
        trainer = getattr(self, "trainer", None)
        return max(int(getattr(trainer, "world_size", 1) or 1), 1) if trainer is not None else 1

    def _loader(self, dataset: Dataset | None, name: str, train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{name} dataset is not set up: call setup() with the right stage first")
        drop_last = False
        if train:  # drop the ragged last batch, unless that would leave no batch at all
            per_rank = math.ceil(len(dataset) / self._world_size())
            drop_last = per_rank >= self.batch_size
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, "train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, "val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test", train=False)


class InpaintingDataModule(SplitLoaders):
    """Folders of images -> batches ``{image, mask, index, path}`` (see the module docstring).

    Args:
        root: one folder to split into train/val/test (``None`` when pre-split roots are given).
        train_root, val_root, test_root: pre-split folders; each replaces its share of ``root``.
        image_size: side of the square crops (pixels).
        train_short_side: ``[min, max]``: multi-scale training crops; each photo is first resized so its short
            side is a random size in this range, then cropped (see ``multiscale_train_transform``). ``None``: one
            random-resized crop of 35-100% of the photo's area (``train_transform``).
        batch_size: images per batch (per device under DDP).
        num_workers: DataLoader worker processes (0 = load in the main process).
        pin_memory: pin host memory (useful on GPU).
        persistent_workers: keep workers alive between epochs (ignored when ``num_workers == 0``).
        mask_generator: ``gen(rng, height, width) -> uint8 mask`` for training (and evaluation by default).
        eval_mask_generator: generator for validation/test/predict; ``None`` -> ``mask_generator``.
        mask_seed: seed of the fixed evaluation masks, ``default_rng((mask_seed, index))``.
        mask_root: folder of mask files paired with the evaluation images by name (replaces the eval generator).
        eval_masks_per_image: fixed masks per validation/test image (each image is served that many times);
            must be 1 with ``mask_root``, which pairs one mask file with each image.
        recursive: search sub-folders for images.
        sample: when ``root`` holds no images, fill it with the embedded sample photos in ``prepare_data``.
        val_fraction, test_fraction, split_seed: the seeded split of ``root`` (or ``train_root``).
    """

    def __init__(
        self,
        root: str | None = None,
        train_root: str | None = None,
        val_root: str | None = None,
        test_root: str | None = None,
        image_size: int = 256,
        train_short_side: list[int] | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        mask_generator: MaskGenerator | None = None,
        eval_mask_generator: MaskGenerator | None = None,
        mask_seed: int = 1234,
        mask_root: str | None = None,
        eval_masks_per_image: int = 1,
        recursive: bool = True,
        sample: bool = False,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
    ):
        super().__init__()
        # Hydra passes lists as ListConfig; hparams go into checkpoints, which must hold plain data only (they are
        # read with weights_only=True), so convert before save_hyperparameters records the argument
        train_short_side = None if train_short_side is None else [int(v) for v in train_short_side]
        # the generators are objects (Hydra's config records them); logger=False: the run's config is saved by the
        # entry point, and Lightning refuses to merge module and datamodule hparams that share a key
        self.save_hyperparameters(ignore=["mask_generator", "eval_mask_generator"], logger=False)
        self.image_size = check_image_size(image_size)
        self.train_short_side = None if train_short_side is None else tuple(int(v) for v in train_short_side)
        if self.train_short_side is not None:
            multiscale_train_transform(
                self.image_size, self.train_short_side
            )  # a bad range fails here, named
        self._set_split_options(
            batch_size, num_workers, mask_seed, split_seed, val_fraction, test_fraction, "images"
        )
        if root is not None and train_root is not None:
            raise ConfigError(
                f"give either root (one folder, split by val_fraction/test_fraction) or train_root "
                f"(pre-split folders), not both: root={root!r}, train_root={train_root!r}"
            )
        if root is None and train_root is None and val_root is None and test_root is None:
            raise ConfigError(
                "no images configured: set root (one folder to split) or train_root/val_root/test_root"
            )
        if sample and root is None:
            raise ConfigError("sample=True writes the embedded photos into root, so root must be set")
        for name, fn in (("mask_generator", mask_generator), ("eval_mask_generator", eval_mask_generator)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"{name} must be callable(rng, height, width) -> mask, got {fn!r}")
        self.root = root
        self.train_root = train_root
        self.val_root = val_root
        self.test_root = test_root
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.mask_generator = mask_generator
        self.eval_mask_generator = eval_mask_generator if eval_mask_generator is not None else mask_generator
        self.mask_root = mask_root
        self.eval_masks_per_image = _check_int(
            eval_masks_per_image,
            "data.eval_masks_per_image",
            1,
            "fixed masks per validation/test image, each image served that many times",
        )
        if self.eval_masks_per_image > 1 and mask_root is not None:
            raise ConfigError(
                f"data.eval_masks_per_image={self.eval_masks_per_image} draws several masks per image, but "
                f"data.mask_root={mask_root!r} pairs each image with one mask file: "
                "set data.eval_masks_per_image=1"
            )
        self.recursive = bool(recursive)
        self.sample = bool(sample)

        self.splits: dict[str, list[Path]] | None = None
        self.split_roots: dict[str, Path | None] = {}
        self.train_dataset: InpaintingDataset | None = None
        self.val_dataset: InpaintingDataset | None = None
        self.test_dataset: InpaintingDataset | None = None

    # -- files ------------------------------------------------------------------------------------------------

    def _root_has_images(self) -> bool:
        try:
            list_images(self.root, recursive=self.recursive)
        except (FileNotFoundError, NoImagesFoundError):
            return False
        return True

    def prepare_data(self) -> None:
        """Write the embedded sample photos into ``root`` when ``sample=True`` and it holds no images yet."""
        if self.sample and not self._root_has_images():
            log.info("data: writing the embedded sample photos into %s", self.root)
            write_sample_images(self.root)

    def _list(self, folder: str) -> list[Path]:
        return list_images(folder, recursive=self.recursive)

    def _compute_splits(self) -> dict[str, list[Path]]:
        source = self.train_root if self.train_root is not None else self.root
        train: list[Path] = []
        val: list[Path] = []
        test: list[Path] = []
        if source is not None:
            pool = self._list(source)
            val_f = 0.0 if self.val_root is not None else self.val_fraction
            test_f = 0.0 if self.test_root is not None else self.test_fraction
            train, val, test = split_paths(pool, val_f, test_f, self.split_seed)
        self.split_roots = {"train": Path(source) if source is not None else None}
        for split, folder in (("val", self.val_root), ("test", self.test_root)):
            self.split_roots[split] = Path(folder) if folder is not None else self.split_roots["train"]
        if self.val_root is not None:
            val = self._list(self.val_root)
        if self.test_root is not None:
            test = self._list(self.test_root)
        splits = {"train": train, "val": val, "test": test}
        where = {k: str(v) if v is not None else "-" for k, v in self.split_roots.items()}
        log.info(
            "data: %d train / %d val / %d test images (train from %s, val from %s, test from %s)%s",
            len(train),
            len(val),
            len(test),
            where["train"],
            where["val"],
            where["test"],
            f"; val/test: {self.eval_masks_per_image} fixed masks per image"
            if self.eval_masks_per_image > 1
            else "",
        )
        for split, files in splits.items():
            if not files and (split != "train" or source is not None):
                log.warning("data: the %s split is empty", split)
        return splits

    # -- datasets ---------------------------------------------------------------------------------------------

    def _eval_dataset(self, split: str) -> InpaintingDataset:
        if self.mask_root is None and self.eval_mask_generator is None:
            raise ConfigError(
                f"the {split} split needs masks: set mask_generator / eval_mask_generator (Hydra: the `mask` "
                "config group) or mask_root"
            )
        return InpaintingDataset(
            self.splits[split],
            eval_transform(self.image_size),
            mask_generator=self.eval_mask_generator,
            mask_seed=self.mask_seed,
            mask_root=self.mask_root,
            image_root=self.split_roots.get(split),
            masks_per_image=self.eval_masks_per_image,
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets ``stage`` needs (``fit``: train + val, ``validate``: val, ``test``/``predict``:
        test, ``None``: all)."""
        if self.sample and not self._root_has_images():
            self.prepare_data()  # setup() called without a Trainer; the write is idempotent and atomic
        if self.splits is None:
            self.splits = self._compute_splits()
        if stage in (None, "fit") and self.train_dataset is None:
            if not self.splits["train"]:
                raise ConfigError("fitting needs training images: set root or train_root")
            if self.mask_generator is None:
                raise ConfigError(
                    "training needs a mask_generator (callable(rng, height, width) -> mask; Hydra: the `mask` config group)"
                )
            self.train_dataset = InpaintingDataset(
                self.splits["train"],
                train_transform(self.image_size)
                if self.train_short_side is None
                else multiscale_train_transform(self.image_size, self.train_short_side),
                mask_generator=self.mask_generator,
                mask_seed=None,
                image_root=self.split_roots.get("train"),
            )
        if stage in (None, "fit", "validate") and self.val_dataset is None:
            self.val_dataset = self._eval_dataset("val")
        if stage in (None, "test", "predict") and self.test_dataset is None:
            self.test_dataset = self._eval_dataset("test")

    # -- loaders ----------------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        counts = {k: len(v) for k, v in (self.splits or {}).items()}
        return f"{type(self).__name__}(root={self.root!r}, image_size={self.image_size}, splits={counts})"


__all__ = ["InpaintingDataModule", "split_paths"]
