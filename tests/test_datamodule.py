"""inpainting.data datasets, datamodule and the embedded sample set (tiny images, CPU, fast)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import seed_everything
from PIL import Image

from inpainting.data.datamodule import InpaintingDataModule, split_paths
from inpainting.data.datasets import InpaintingDataset
from inpainting.data.images import list_images
from inpainting.data.sample import write_sample_images
from inpainting.data.transforms import eval_transform


class BoxGenerator:
    """A tiny local mask generator: one random box (1 = missing)."""

    def __call__(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        mask = np.zeros((height, width), np.uint8)
        h, w = int(rng.integers(2, height // 2 + 2)), int(rng.integers(2, width // 2 + 2))
        y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        mask[y : y + h, x : x + w] = 1
        return mask


def write_images(folder: Path, count: int, size_hw=(24, 28), prefix="img", seed=0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}_{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (*size_hw, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def make_dm(**kwargs) -> InpaintingDataModule:
    defaults = dict(image_size=16, batch_size=2, num_workers=0, mask_generator=BoxGenerator())
    defaults.update(kwargs)
    return InpaintingDataModule(**defaults)


def collect(loader) -> list[dict]:
    return list(loader)


def test_seeded_split_is_deterministic_and_disjoint(tmp_path):
    write_images(tmp_path / "all", 10)
    a, b = make_dm(root=str(tmp_path / "all")), make_dm(root=str(tmp_path / "all"))
    a.setup("fit")
    b.setup("test")
    assert a.splits == b.splits
    train, val, test = (set(a.splits[k]) for k in ("train", "val", "test"))
    assert len(val) == 1 and len(test) == 1 and len(train) == 8
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(list_images(tmp_path / "all"))
    c = make_dm(root=str(tmp_path / "all"), split_seed=7, val_fraction=0.3)
    c.setup("fit")
    assert len(c.splits["val"]) == 3


def test_split_sizes_for_tiny_folders():
    paths = [Path(f"{i}.png") for i in range(3)]
    assert [len(p) for p in split_paths(paths[:1], 0.1, 0.1, 0)] == [1, 0, 0]
    assert [len(p) for p in split_paths(paths[:2], 0.1, 0.1, 0)] == [1, 1, 0]
    assert [len(p) for p in split_paths(paths, 0.1, 0.1, 0)] == [1, 1, 1]
    assert [len(p) for p in split_paths(paths, 0.0, 0.0, 0)] == [3, 0, 0]


def test_pre_split_roots(tmp_path):
    tr = write_images(tmp_path / "train", 4, prefix="tr")
    va = write_images(tmp_path / "val", 2, prefix="va")
    te = write_images(tmp_path / "test", 3, prefix="te")
    dm = make_dm(
        train_root=str(tmp_path / "train"), val_root=str(tmp_path / "val"), test_root=str(tmp_path / "test")
    )
    dm.setup()
    assert dm.splits == {"train": tr, "val": va, "test": te}
    # val carved out of train_root when only test_root is separate
    dm2 = make_dm(train_root=str(tmp_path / "train"), test_root=str(tmp_path / "test"), val_fraction=0.25)
    dm2.setup()
    assert len(dm2.splits["val"]) == 1 and len(dm2.splits["train"]) == 3 and dm2.splits["test"] == te
    with pytest.raises(ValueError, match="root"):
        make_dm(root=str(tmp_path / "train"), train_root=str(tmp_path / "train"))


def test_batch_contract(tmp_path):
    write_images(tmp_path / "all", 6, size_hw=(40, 30))
    dm = make_dm(root=str(tmp_path / "all"), val_fraction=0.34, test_fraction=0.0)
    dm.setup("fit")
    batches = collect(dm.train_dataloader())
    assert len(batches) == 2  # 4 train images, batch 2, drop_last
    for batch in batches + collect(dm.val_dataloader()):
        image, mask = batch["image"], batch["mask"]
        assert image.dtype == torch.float32 and mask.dtype == torch.float32
        assert image.shape == (2, 3, 16, 16) and mask.shape == (2, 1, 16, 16)
        assert image.min() >= -1 and image.max() <= 1
        assert set(torch.unique(mask).tolist()) <= {0.0, 1.0} and mask.sum() > 0
        assert batch["index"].dtype == torch.int64 and len(batch["path"]) == 2
        assert all(isinstance(p, str) and os.path.exists(p) for p in batch["path"])


def _val_masks(dm: InpaintingDataModule) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    dm.setup("validate")
    batches = collect(dm.val_dataloader())
    paths = [p for b in batches for p in b["path"]]
    return paths, torch.cat([b["mask"] for b in batches]), torch.cat([b["image"] for b in batches])


def test_val_masks_fixed_across_instances_and_workers(tmp_path):
    write_images(tmp_path / "all", 8)
    kwargs = dict(root=str(tmp_path / "all"), val_fraction=0.5, test_fraction=0.0)
    p0, m0, i0 = _val_masks(make_dm(**kwargs))
    p1, m1, i1 = _val_masks(make_dm(**kwargs))
    p2, m2, i2 = _val_masks(make_dm(**kwargs, num_workers=2, batch_size=3))
    assert p0 == p1 == p2 and len(p0) == 4
    assert torch.equal(m0, m1) and torch.equal(m0, m2)
    assert torch.equal(i0, i1) and torch.equal(i0, i2)
    # the contract: mask of val image `index` drawn from default_rng((mask_seed, index))
    expected = BoxGenerator()(np.random.default_rng((1234, 0)), 16, 16)
    assert np.array_equal(m0[0, 0].numpy(), expected)
    p3, m3, _ = _val_masks(make_dm(**kwargs, mask_seed=99))
    assert not torch.equal(m0, m3)


def test_training_masks_reproducible_and_fresh(tmp_path):
    paths = write_images(tmp_path / "all", 2)
    ds = InpaintingDataset(paths, None, mask_generator=BoxGenerator(), mask_seed=None)

    def draws():
        seed_everything(5, workers=True, verbose=False)
        return [ds[0]["mask"] for _ in range(4)]

    ds._draws = 0
    first = draws()
    ds._draws = 0
    second = draws()
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert len({tuple(m.flatten().tolist()) for m in first}) > 1  # a new mask on every draw


def test_corrupt_file_is_skipped_with_one_warning(tmp_path, caplog):
    write_images(tmp_path / "all", 5)
    (tmp_path / "all" / "img_02.png").write_bytes(b"garbage, not a png")
    dm = make_dm(root=str(tmp_path / "all"), val_fraction=0.0, test_fraction=0.0, batch_size=5)
    dm.setup("fit")
    with caplog.at_level(logging.WARNING, logger="inpainting.data"):
        for _ in range(2):  # two epochs: the file is warned about once
            batches = collect(dm.train_dataloader())
            assert len(batches) == 1 and batches[0]["image"].shape[0] == 5
            assert not any(p.endswith("img_02.png") for p in batches[0]["path"])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "img_02.png" in r.getMessage()]
    assert len(warnings) == 1
    assert dm.train_dataset.skipped == {str(tmp_path / "all" / "img_02.png")}


def test_all_files_corrupt_raises(tmp_path):
    for i in range(2):
        (tmp_path / f"bad{i}.png").write_bytes(b"nope")
    ds = InpaintingDataset(sorted(tmp_path.glob("*.png")), None, mask_generator=BoxGenerator(), mask_seed=0)
    with pytest.raises(RuntimeError, match="none of the 2 image files"):
        ds[0]


def test_images_smaller_than_crop(tmp_path):
    write_images(tmp_path / "all", 4, size_hw=(20, 30))
    dm = make_dm(root=str(tmp_path / "all"), image_size=64, val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        batch = next(iter(loader))
        assert batch["image"].shape[1:] == (3, 64, 64) and batch["mask"].shape[1:] == (1, 64, 64)


def test_mask_root_pairs_files_and_rejects_size_mismatch(tmp_path):
    images = write_images(tmp_path / "img", 2, size_hw=(16, 16))
    (tmp_path / "masks").mkdir()
    hole = np.zeros((16, 16), np.uint8)
    hole[4:8, 4:12] = 255
    Image.fromarray(hole).save(tmp_path / "masks" / "img_00_mask000.png")  # LaMa-style name
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "masks" / "img_01.png")  # wrong size
    ds = InpaintingDataset(images, eval_transform(16), mask_seed=0, mask_root=tmp_path / "masks")
    assert np.array_equal(ds[0]["mask"][0].numpy(), (hole > 0).astype(np.float32))
    with pytest.raises(ValueError) as info:
        ds[1]
    message = str(info.value)
    assert "img_01.png" in message and str(tmp_path / "masks") in message and str(tmp_path / "img") in message
    assert "12x10" in message and "16x16" in message
    (tmp_path / "masks" / "img_01.png").unlink()
    with pytest.raises(FileNotFoundError, match="img_01"):
        InpaintingDataset(images, None, mask_seed=0, mask_root=tmp_path / "masks")


@pytest.mark.parametrize(
    ("option", "value"),
    [("batch_size", 0), ("image_size", -1), ("num_workers", -1), ("batch_size", 2.5), ("val_fraction", 1.5)],
)
def test_invalid_options_name_themselves(tmp_path, option, value):
    with pytest.raises(ValueError, match=option):
        make_dm(root=str(tmp_path), **{option: value})


def test_write_sample_images_and_sample_datamodule(tmp_path):
    written = write_sample_images(tmp_path / "sample")
    assert len(written) >= 8 and all(p.exists() for p in written)
    assert len(list_images(tmp_path / "sample")) == len(written)
    mtimes = [p.stat().st_mtime_ns for p in written]
    assert write_sample_images(tmp_path / "sample") == written
    assert [p.stat().st_mtime_ns for p in written] == mtimes  # idempotent: nothing rewritten
    dm = make_dm(root=str(tmp_path / "fresh"), sample=True)
    dm.prepare_data()
    dm.setup("fit")
    assert sum(len(v) for v in dm.splits.values()) == len(written)
