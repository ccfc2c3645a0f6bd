"""Small crops first (``callbacks.progressive_crop.schedule``): a curriculum that buys more steps per CPU-hour.

Progressive resizing (fast.ai's DAWNBench recipe; Karras et al. 2018 grow GANs the same way) trains the first steps
on smaller images, where a step costs a fraction of the FLOPs, and ends at the full size. For inpainting we take a
random window of the training batch rather than a downscaled image, so the pixels keep the scale the model is
evaluated at (a downscaled photo has denser texture than the photos it will fill). Every tensor of the batch that
has the image's height and width (image, mask, a video clip's frames) is cut to the same window; validation and
test are untouched, so their PSNR stays comparable across runs.

``schedule``: ``[[step, size], ...]``, ascending steps: from ``step`` on, training crops are ``size`` x ``size`` (a
size at or above the batch's own is the full batch). Sizes must keep the network's padding multiple in mind only
for speed: networks pad any size. ``null``: off.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from inpainting.errors import ConfigError

log = logging.getLogger(__name__)

OPTION = "callbacks.progressive_crop.schedule"


def _check_schedule(schedule: Sequence[Sequence[int]] | None) -> list[tuple[int, int]]:
    if schedule is None:
        return []
    pairs = []
    for entry in schedule:
        if len(entry) != 2 or any(int(v) != v or v < 0 for v in entry) or int(entry[1]) < 1:
            raise ConfigError(
                f"{OPTION}: each entry must be [step, size] with step >= 0 and size >= 1 (ints), got {list(entry)}"
            )
        pairs.append((int(entry[0]), int(entry[1])))
    steps = [step for step, _ in pairs]
    if steps != sorted(set(steps)):
        raise ConfigError(f"{OPTION}: steps must be strictly ascending, got {steps}")
    return pairs


class ProgressiveCrop(L.Callback):
    """Cut each training batch to a random ``size`` window, ``size`` from ``schedule`` at the current step."""

    def __init__(self, schedule: Sequence[Sequence[int]] | None = None, seed: int | None = 0) -> None:
        self.schedule = _check_schedule(schedule)
        self.seed = seed or 0
        # made on first use: a torch.Generator cannot be pickled, and ddp_spawn pickles the callbacks
        self._generator: torch.Generator | None = None
        self._pending_state: torch.Tensor | None = None
        self._logged: int | None = None

    @property
    def generator(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
            if self._pending_state is not None:
                self._generator.set_state(self._pending_state)
        return self._generator

    def size_at(self, step: int) -> int | None:
        """The crop size in force at ``step`` (None: the full batch)."""
        size = None
        for start, value in self.schedule:
            if step >= start:
                size = value
        return size

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        size = self.size_at(trainer.global_step)
        if size is None or not isinstance(batch, dict) or "image" not in batch:
            return
        height, width = batch["image"].shape[-2:]
        if size >= height and size >= width:
            return
        ch, cw = min(size, height), min(size, width)
        top = int(torch.randint(0, height - ch + 1, (), generator=self.generator))
        left = int(torch.randint(0, width - cw + 1, (), generator=self.generator))
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and value.dim() >= 3 and value.shape[-2:] == (height, width):
                batch[key] = value[..., top : top + ch, left : left + cw]
        if self._logged != size:
            self._logged = size
            log.info(
                "step %d: training on %dx%d crops of the batch (%s)", trainer.global_step, ch, cw, OPTION
            )

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "generator" in state_dict:
            self._pending_state = state_dict["generator"]
            if self._generator is not None:
                self._generator.set_state(self._pending_state)
