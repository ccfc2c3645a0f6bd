"""Every ablation-zoo experiment composes with train.yaml's `module:` node and trains one fast_dev_run step."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from inpainting.training.fit import train
from inpainting.training.gan_module import GANInpaintingModule
from inpainting.training.module import InpaintingModule

# (experiment, module class, generator class name, discriminator class name or None)
EXPERIMENTS = [
    ("pconv", InpaintingModule, "PConvUNet", None),
    ("deepfill_v2", GANInpaintingModule, "GatedCANet", "SNPatchGAN"),
    ("lama_like", GANInpaintingModule, "SAUNet", "PatchGAN"),
    ("sa_unet_gan", GANInpaintingModule, "SAUNet", "SNPatchGAN"),
]


@pytest.mark.parametrize(("experiment", "module_cls", "net", "disc"), EXPERIMENTS)
def test_experiment_composes_and_runs_fast_dev_run(
    experiment, module_cls, net, disc, tiny_train_config
) -> None:
    extra = ["discriminator.base_channels=8"] if disc else []
    cfg = tiny_train_config(f"experiment={experiment}", "debug=fast_dev_run", *extra)
    module = instantiate(cfg.module)
    assert type(module) is module_cls and type(module.net).__name__ == net
    if disc:
        assert type(module.discriminator).__name__ == disc
        assert cfg.module.d_optimizer._partial_  # an independent optimizer for D
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    if disc:
        assert "train/d_loss" in metrics and "train/g_adversarial" in metrics


def test_paper_weights_reach_the_losses(tiny_train_config) -> None:
    pconv = instantiate(tiny_train_config("experiment=pconv").loss)
    assert (
        pconv.valid_weight,
        pconv.hole_weight,
        pconv.perceptual_weight,
        pconv.style_weight,
        pconv.tv_weight,
    ) == (
        1.0,
        6.0,
        0.05,
        120.0,
        0.1,
    )
    lama = instantiate(tiny_train_config("experiment=lama_like", "discriminator.base_channels=8").module)
    assert (lama.loss.valid_weight, lama.loss.hole_weight, lama.loss.perceptual_weight) == (10.0, 0.0, 30.0)
    adv = lama.adversarial
    assert (adv.kind, adv.weight, adv.r1_weight, adv.feature_matching_weight) == (
        "nonsaturating",
        10.0,
        0.001,
        100.0,
    )
    deepfill = instantiate(tiny_train_config("experiment=deepfill_v2").module)
    assert deepfill.adversarial.kind == "hinge" and deepfill.loss.coarse_weight == 1.0


def test_discriminator_and_model_can_be_swapped_from_the_command_line(tiny_train_config) -> None:
    cfg = tiny_train_config("experiment=deepfill_v2", "discriminator=patchgan", "model=pconv_unet")
    module = instantiate(cfg.module)
    assert type(module.discriminator).__name__ == "PatchGAN" and type(module.net).__name__ == "PConvUNet"


@pytest.mark.parametrize("model", ["pconv_unet", "gated_ca"])
def test_new_models_train_with_the_plain_module(model, tiny_train_config) -> None:
    metrics = train(tiny_train_config(f"model={model}", "debug=fast_dev_run"))
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
