"""Precision and speed options: bf16-mixed on CPU, gradient clipping, torch.compile and channels-last.

Each option must leave the numbers where they were, up to its own rounding: bf16 keeps 8 bits of mantissa
(relative error ~4e-3 per op), compile and channels-last only reorder float32 arithmetic.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from inpainting.training.fit import train
from inpainting.training.speed import SpeedOptions


class GradNormRecorder(L.Callback):
    """Records the total gradient norm after each optimizer step (Lightning zeroes grads only before the next
    backward, so what is left in ``.grad`` here is what the optimizer used, i.e. after clipping)."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(float(torch.nn.utils.get_total_norm(grads)))


def _trainer(cfg, **kwargs) -> L.Trainer:
    return instantiate(
        cfg.trainer, logger=False, enable_progress_bar=False, enable_model_summary=False, **kwargs
    )


def test_bf16_mixed_trains_and_its_loss_is_close_to_fp32_on_the_same_batch(tiny_train_config):
    cfg = tiny_train_config("trainer.precision=bf16-mixed", "test=false")
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert metrics["val/psnr"] > 0

    # the same weights and validation batch under both precisions (validation masks are fixed by index)
    L.seed_everything(0)
    module = instantiate(cfg.module)
    results = {}
    for precision in ("32-true", "bf16-mixed"):
        trainer = _trainer(tiny_train_config(f"trainer.precision={precision}"), callbacks=[])
        results[precision] = trainer.validate(module, datamodule=instantiate(cfg.data), verbose=False)[0]
    fp32, bf16 = results["32-true"], results["bf16-mixed"]
    assert torch.isfinite(torch.tensor(bf16["val/loss"]))
    assert bf16["val/loss"] == pytest.approx(fp32["val/loss"], rel=3e-2)
    assert bf16["val/psnr"] == pytest.approx(fp32["val/psnr"], abs=0.2)  # dB


def test_gradient_clip_val_bounds_the_gradient_norm_the_optimizer_sees(tiny_train_config):
    norms = {}
    for clip in (None, 1e-3):
        cfg = tiny_train_config(f"trainer.gradient_clip_val={'null' if clip is None else clip}")
        assert cfg.trainer.gradient_clip_val == clip
        L.seed_everything(0)
        recorder = GradNormRecorder()
        _trainer(cfg, callbacks=[recorder]).fit(instantiate(cfg.module), datamodule=instantiate(cfg.data))
        norms[clip] = recorder.norms
    assert len(norms[None]) == len(norms[1e-3]) == 2
    assert min(norms[None]) > 1e-2, "the unclipped gradients are far above the clip value"
    assert max(norms[1e-3]) <= 1e-3 * 1.001


def _tiny_module(tiny_train_config) -> tuple[L.LightningModule, torch.Tensor, torch.Tensor]:
    cfg = tiny_train_config()
    L.seed_everything(0)
    module = instantiate(cfg.module).eval()
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    mask = (torch.rand(2, 1, 32, 32) > 0.7).float()
    return module, image, mask


def test_channels_last_keeps_outputs_and_reaches_the_batch(tiny_train_config):
    module, image, mask = _tiny_module(tiny_train_config)
    with torch.no_grad():
        reference = module(image, mask)[0]
    speed = SpeedOptions(channels_last=True)
    speed.setup(None, module, "fit")
    conv = next(m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    batch = {"image": image.clone(), "mask": mask.clone(), "index": torch.arange(2)}
    speed.on_train_batch_start(None, module, batch, 0)
    assert batch["image"].is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        output = module(batch["image"], batch["mask"])[0]
    torch.testing.assert_close(output, reference, rtol=1e-4, atol=1e-5)


def test_channels_last_run_trains_through_the_config(tiny_train_config):
    cfg = tiny_train_config("callbacks.speed.channels_last=true", "test=false")
    assert torch.isfinite(torch.tensor(train(cfg)["train/loss"]))


# inductor builds C++ kernels: ~35 s for this tiny net's forward alone on 2 cores, hence slow
@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compile_in_place_keeps_outputs_gradients_and_checkpoint_keys(backend, tiny_train_config):
    module, image, mask = _tiny_module(tiny_train_config)
    keys = list(module.state_dict())
    reference = module(image, mask)[0]
    reference.square().mean().backward()
    reference_grads = [p.grad.clone() for p in module.net.parameters()]
    module.zero_grad()

    speed = SpeedOptions(compile=True, compile_kwargs={"backend": backend})
    speed.setup(None, module, "fit")
    speed.setup(None, module, "test")  # fit -> test in one process compiles once
    assert module.net._compiled_call_impl is not None
    assert list(module.state_dict()) == keys, "in-place compile must not rename checkpoint keys"
    output = module(image, mask)[0]
    output.square().mean().backward()
    torch.testing.assert_close(output, reference.detach(), rtol=1e-4, atol=1e-5)
    for grad, expected in zip((p.grad for p in module.net.parameters()), reference_grads, strict=True):
        torch.testing.assert_close(grad, expected, rtol=1e-3, atol=1e-5)
