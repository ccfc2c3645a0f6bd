"""Speed options as a Lightning callback: ``torch.compile`` of the generator and channels-last memory format.

Both are off by default (``conf/callbacks/speed.yaml``) and change no result beyond float
rounding (``tests/test_precision.py``). Turn them on from the command line::

    python -m inpainting.train callbacks.speed.compile=true callbacks.speed.channels_last=true

Why a callback and not module code: the LightningModule stays what it is on every device; the options are
run-time choices of the machine. Why ``nn.Module.compile()`` (in place) and not ``net = torch.compile(net)``:
the wrapper would prefix every parameter with ``_orig_mod.``, so checkpoints of compiled and plain runs would
not load into each other; compiling in place keeps the ``state_dict`` keys. Both are applied in ``setup``,
i.e. in each worker process after ``ddp_spawn`` starts it (a compiled module is not picklable) and before
Lightning wraps the module in DDP and builds the optimizer.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)

BATCH_TENSORS = ("image", "mask")


class SpeedOptions(Callback):
    """Compile ``pl_module.net`` in place and/or move it (and each batch's images) to channels-last.

    Args:
        compile: ``pl_module.net.compile(**compile_kwargs)``; the first steps pay the compilation
            (tens of seconds on CPU), later ones run faster.
        channels_last: weights and the batch's ``image``/``mask`` in ``torch.channels_last``; convolutions
            then skip layout conversions where the backend prefers NHWC (cuDNN with tensor cores, oneDNN bf16).
        compile_kwargs: passed to ``torch.compile`` (e.g. ``{mode: max-autotune, dynamic: false}``).
    """

    def __init__(
        self, compile: bool = False, channels_last: bool = False, compile_kwargs: dict[str, Any] | None = None
    ) -> None:
        self.compile = bool(compile)
        self.channels_last = bool(channels_last)
        self.compile_kwargs = dict(compile_kwargs or {})

    @staticmethod
    def _net(pl_module: L.LightningModule) -> torch.nn.Module:
        net = getattr(pl_module, "net", None)
        if not isinstance(net, torch.nn.Module):
            raise TypeError(
                f"SpeedOptions needs a LightningModule with a `net` module, got {type(pl_module)}"
            )
        return net

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        net = self._net(pl_module)
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        # `_compiled_call_impl` is set by nn.Module.compile(): compile once across fit -> test in one process
        if self.compile and getattr(net, "_compiled_call_impl", None) is None:
            log.info(
                "speed: compiling %s in place (torch.compile %s)", type(net).__name__, self.compile_kwargs
            )
            net.compile(**self.compile_kwargs)

    def _to_channels_last(self, batch: Any) -> None:
        if self.channels_last and isinstance(batch, dict):
            for key in BATCH_TENSORS:
                value = batch.get(key)
                if isinstance(value, torch.Tensor) and value.dim() == 4:
                    batch[key] = value.contiguous(memory_format=torch.channels_last)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._to_channels_last(batch)

    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._to_channels_last(batch)

    def on_test_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._to_channels_last(batch)

    def on_predict_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._to_channels_last(batch)
