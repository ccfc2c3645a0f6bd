"""Small crops first: the schedule, the batch cut to one window, and a run that trains on it and validates whole."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from inpainting.cli.errors import is_user_error
from inpainting.train import train
from inpainting.training.progressive_crop import ProgressiveCrop


def _batch(frames: int | None = None) -> dict:
    lead = (2,) if frames is None else (2, frames)
    image = torch.arange(2 * (frames or 1) * 3 * 32 * 32, dtype=torch.float32).view(*lead, 3, 32, 32)
    return {"image": image, "mask": (image[..., :1, :, :] % 7 == 0).float(), "index": torch.tensor([0, 1])}


@pytest.mark.parametrize("frames", [None, 4])
def test_every_pixel_tensor_is_cut_to_the_same_window_at_the_scheduled_size(frames):
    crop = ProgressiveCrop([[0, 16], [10, 24], [20, 64]])
    assert [crop.size_at(s) for s in (0, 9, 10, 19, 20)] == [16, 16, 24, 24, 64]
    for step, size in ((0, 16), (10, 24), (20, 32)):
        batch = _batch(frames)
        full = {k: v.clone() for k, v in batch.items()}
        crop.on_train_batch_start(SimpleNamespace(global_step=step), None, batch, 0)
        assert batch["image"].shape[-2:] == (size, size) and batch["mask"].shape[-2:] == (size, size)
        assert torch.equal(batch["index"], full["index"])  # not a pixel tensor: untouched
        # one window, the same for image and mask: find it from the first pixel's value
        first = int(batch["image"].flatten()[0])
        top, left = divmod(first, 32)
        window = full["image"][..., top : top + size, left : left + size]
        assert torch.equal(batch["image"], window)
        assert torch.equal(batch["mask"], full["mask"][..., top : top + size, left : left + size])


def test_windows_vary_are_seeded_and_off_without_a_schedule():
    def tops(seed: int) -> list[int]:
        crop, out = ProgressiveCrop([[0, 8]], seed=seed), []
        for _ in range(6):
            batch = _batch()
            crop.on_train_batch_start(SimpleNamespace(global_step=0), None, batch, 0)
            out.append(int(batch["image"].flatten()[0]))
        return out

    assert tops(0) == tops(0) and len(set(tops(0))) > 1 and tops(0) != tops(1)
    batch = _batch()
    ProgressiveCrop(None).on_train_batch_start(SimpleNamespace(global_step=0), None, batch, 0)
    assert batch["image"].shape[-2:] == (32, 32)


@pytest.mark.parametrize("schedule", [[[10, 16], [5, 32]], [[0, 0]], [[0, 16, 3]], [[-1, 16]]])
def test_a_bad_schedule_is_one_clear_line(schedule, tiny_train_config):
    cfg = tiny_train_config()
    with pytest.raises(InstantiationException) as error:
        instantiate(cfg.callbacks.progressive_crop, schedule=schedule)
    assert is_user_error(error.value) and "callbacks.progressive_crop.schedule" in str(error.value)


def test_a_run_trains_on_small_crops_and_still_validates_and_tests(tiny_train_config, caplog):
    cfg = tiny_train_config("callbacks.progressive_crop.schedule=[[0,16]]")
    with caplog.at_level(logging.INFO, logger="inpainting.training.progressive_crop"):
        metrics = train(cfg)
    assert any("training on 16x16 crops" in r.getMessage() for r in caplog.records)
    assert "val/psnr" in metrics and "test/psnr" in metrics


def test_survives_pickling_for_ddp_spawn_and_resumes_its_windows():
    """ddp_spawn pickles the callbacks; a resumed run continues the same sequence of windows."""
    import pickle

    def first_pixel(crop: ProgressiveCrop) -> int:
        batch = _batch()
        crop.on_train_batch_start(SimpleNamespace(global_step=0), None, batch, 0)
        return int(batch["image"].flatten()[0])

    crop = pickle.loads(pickle.dumps(ProgressiveCrop([[0, 8]], seed=3)))
    first_pixel(crop)
    state = crop.state_dict()
    expected = [first_pixel(crop) for _ in range(4)]
    resumed = ProgressiveCrop([[0, 8]], seed=3)
    resumed.load_state_dict(state)
    assert [first_pixel(resumed) for _ in range(4)] == expected
