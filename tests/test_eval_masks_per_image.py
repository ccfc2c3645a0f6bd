"""``data.eval_masks_per_image``: every validation/test image served k times, each with its own fixed mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from inpainting.data.datamodule import InpaintingDataModule
from inpainting.data.datasets import InpaintingDataset
from inpainting.data.masks import BoxMask
from inpainting.data.transforms import eval_transform
from inpainting.errors import ConfigError
from inpainting.training.module import InpaintingModule
from tests.conftest import TINY_OVERRIDES, compose_config, run_cli, write_tiny_images

SIZE = 16


def make_dm(root: Path, **kwargs) -> InpaintingDataModule:
    options = dict(
        root=str(root),
        image_size=SIZE,
        batch_size=3,
        num_workers=0,
        mask_generator=BoxMask(min_size=2, max_size=8, margin=0, reference_size=SIZE),
        val_fraction=0.5,
        test_fraction=0.0,
    )
    options.update(kwargs)
    return InpaintingDataModule(**options)


def val_samples(dm: InpaintingDataModule) -> dict[str, list]:
    dm.setup("validate")
    out: dict[str, list] = {"mask": [], "image": [], "index": [], "path": []}
    for batch in dm.val_dataloader():
        out["mask"] += list(batch["mask"])
        out["image"] += list(batch["image"])
        out["index"] += batch["index"].tolist()
        out["path"] += list(batch["path"])
    return out


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    write_tiny_images(tmp_path / "all", count=6, size=(24, 28))
    return tmp_path / "all"


def test_k_masks_per_image_are_distinct_fixed_and_labelled_with_their_image(photos):
    a = val_samples(make_dm(photos, eval_masks_per_image=3))
    b = val_samples(make_dm(photos, eval_masks_per_image=3, batch_size=2))  # another instance and batching
    val = make_dm(photos)
    val.setup("validate")
    images = val.splits["val"]
    assert len(images) == 3 and len(a["mask"]) == 9  # k x images
    assert all(torch.equal(x, y) for x, y in zip(a["mask"], b["mask"], strict=True))
    assert a["index"] == b["index"] == [0, 1, 2] * 3  # every image before any repeat
    assert a["path"] == [str(images[i]) for i in a["index"]]  # the image actually served
    for i in range(3):
        rows = [t for t, index in enumerate(a["index"]) if index == i]
        assert all(torch.equal(a["image"][rows[0]], a["image"][t]) for t in rows)  # same photo...
        masks = [a["mask"][t] for t in rows]
        assert all(not torch.equal(masks[j], masks[m]) for j in range(3) for m in range(j))  # ...new holes


def test_one_mask_per_image_is_the_rule_of_before_and_the_first_of_k(photos):
    one = val_samples(make_dm(photos))  # the option left at its default
    dm = make_dm(photos)
    dm.setup("validate")
    plain = InpaintingDataset(  # a dataset built without the option, as the datamodule built it before
        dm.splits["val"], eval_transform(SIZE), mask_generator=dm.eval_mask_generator, mask_seed=dm.mask_seed
    )
    assert len(plain) == len(one["mask"]) == 3
    for i in range(3):
        assert torch.equal(one["mask"][i], plain[i]["mask"])
        expected = dm.eval_mask_generator(np.random.default_rng((dm.mask_seed, i)), SIZE, SIZE)
        assert np.array_equal(one["mask"][i][0].numpy(), expected > 0)
    four = val_samples(make_dm(photos, eval_masks_per_image=4))
    assert len(four["mask"]) == 12
    assert all(torch.equal(one["mask"][i], four["mask"][i]) for i in range(3))  # raising k keeps these masks
    third = dm.eval_mask_generator(np.random.default_rng((dm.mask_seed, 1, 2)), SIZE, SIZE)
    assert np.array_equal(four["mask"][2 * 3 + 1][0].numpy(), third > 0)  # image 1, mask 2


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "8"])
def test_a_bad_count_is_refused_naming_the_option(photos, value):
    with pytest.raises(ConfigError, match=r"^data\.eval_masks_per_image must be a positive integer"):
        make_dm(photos, eval_masks_per_image=value)


def test_several_masks_with_mask_files_is_refused(photos, tmp_path):
    with pytest.raises(ConfigError, match="data.eval_masks_per_image=1"):
        make_dm(photos, eval_masks_per_image=2, mask_root=str(tmp_path))


def test_a_bad_count_is_one_line_through_the_train_command(tmp_path, image_folder):
    run_dir = tmp_path / "run"
    result = run_cli(
        [
            *TINY_OVERRIDES,
            f"data.root={image_folder}",
            "data.eval_masks_per_image=0",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    errors = [line for line in output.splitlines() if "ERROR" in line and "HYDRA_FULL_ERROR" not in line]
    assert len(errors) == 1, output[-2000:]
    assert "data.eval_masks_per_image must be a positive integer" in errors[0] and "got 0" in errors[0]
    assert "Traceback" not in output
    assert not run_dir.exists()


def test_the_sample_recipe_validates_on_eight_masks_per_photo(tmp_path):
    dm = instantiate(compose_config(tmp_path).data)
    dm.prepare_data()
    dm.setup()
    assert dm.eval_masks_per_image == 8
    assert len(dm.val_dataset) == 8 * len(dm.splits["val"]) == 24
    assert len(dm.test_dataset) == 8 * len(dm.splits["test"])


def test_training_validates_every_image_k_times(tiny_train_config, monkeypatch):
    from inpainting.training.fit import train

    seen: list[tuple[int, str, torch.Tensor]] = []
    validation_step = InpaintingModule.validation_step

    def record(self, batch, batch_idx):
        seen.extend(zip(batch["index"].tolist(), batch["path"], batch["mask"], strict=True))
        return validation_step(self, batch, batch_idx)

    monkeypatch.setattr(InpaintingModule, "validation_step", record)
    metrics = train(tiny_train_config("data.eval_masks_per_image=2", "test=false", "validate_first=false"))
    assert "val/psnr" in metrics
    assert len(seen) == 2 and seen[0][:2] == seen[1][:2]  # the one val image, twice
    assert not torch.equal(seen[0][2], seen[1][2])  # with two masks
