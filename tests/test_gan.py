"""Adversarial losses by hand, R1, the manual-optimization GAN module (D:G ratio, EMA, clipping), and GAN resume."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import open_dict
from torch import nn
from torch.utils.data import DataLoader, Dataset

from inpainting.inference.checkpoint import generator_state_dict, load_generator
from inpainting.losses.adversarial import (
    AdversarialLoss,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    nonsaturating_discriminator_loss,
    nonsaturating_generator_loss,
    r1_penalty,
)
from inpainting.losses.recipe import RecipeLoss
from inpainting.models.discriminators import PatchGAN, SNPatchGAN
from inpainting.models.gated_ca import GatedCANet
from inpainting.training.fit import train
from inpainting.training.gan_module import GANInpaintingModule

# ------------------------------------------------------------------------------------------------ losses


def test_hinge_and_nonsaturating_by_hand() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # D: mean(relu(1 - real)) = (0 + 0.5) / 2, mean(relu(1 + fake)) = (0 + 1) / 2
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(0.25 + 0.5)
    assert hinge_generator_loss(fake).item() == pytest.approx(1.0)
    sp = torch.nn.functional.softplus
    expected = sp(-real).mean() + sp(fake).mean()
    assert nonsaturating_discriminator_loss(real, fake).item() == pytest.approx(expected.item())
    assert nonsaturating_generator_loss(fake).item() == pytest.approx(sp(-fake).mean().item())
    # mask_as_fake_target: a fake patch with no hole is judged as real
    no_hole = torch.zeros(2)
    assert hinge_discriminator_loss(real, fake, no_hole).item() == pytest.approx(0.25 + (3 + 1) / 2)


class _ConstantD(nn.Module):
    """D(x) = c: ignores its input (``uses_input=False``) or multiplies it by zero."""

    def __init__(self, uses_input: bool) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(0.3))
        self.uses_input = uses_input

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None, return_features: bool = False):
        logits = self.c.expand(image.shape[0], 1, 2, 2)
        if self.uses_input:
            logits = logits + 0.0 * image.mean(dim=1, keepdim=True)[..., :2, :2]
        return (logits, [logits]) if return_features else logits


@pytest.mark.parametrize("uses_input", [True, False])
def test_r1_is_zero_for_a_constant_discriminator(uses_input: bool) -> None:
    real = torch.rand(2, 3, 8, 8, requires_grad=True)
    d = _ConstantD(uses_input)
    assert r1_penalty(d(real), real).item() == 0.0
    terms = AdversarialLoss("nonsaturating", r1_weight=1.0).discriminator_terms(
        d, real, torch.rand(2, 3, 8, 8), None
    )
    assert terms["r1"].item() == 0.0


def test_r1_of_a_linear_discriminator_is_its_squared_weight_norm() -> None:
    w = torch.randn(3, 4, 4)
    real = torch.rand(5, 3, 4, 4, requires_grad=True)
    logits = (real * w).sum(dim=(1, 2, 3))
    assert r1_penalty(logits, real).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)
    # differentiable w.r.t. the discriminator's weights (create_graph)
    w.requires_grad_(True)
    r1_penalty((real * w).sum(dim=(1, 2, 3)), real).backward()
    assert torch.allclose(w.grad, 2 * w.detach())


def test_feature_matching() -> None:
    a = [torch.ones(1, 2, 3, 3), torch.zeros(1, 1, 2, 2)]
    assert feature_matching_loss(a, a).item() == 0
    b = [torch.zeros(1, 2, 3, 3), torch.full((1, 1, 2, 2), 3.0)]
    assert feature_matching_loss(a, b).item() == pytest.approx((1 + 3) / 2)
    with pytest.raises(ValueError):
        feature_matching_loss(a, b[:1])


@pytest.mark.parametrize("disc", [PatchGAN(base_channels=4), SNPatchGAN(base_channels=4)])
def test_generator_terms_give_gradients_to_the_fake_only(disc: nn.Module) -> None:
    loss = AdversarialLoss("nonsaturating", weight=2.0, feature_matching_weight=3.0)
    real, mask = torch.rand(2, 3, 32, 32), torch.ones(2, 1, 32, 32)
    fake = torch.rand(2, 3, 32, 32, requires_grad=True)
    terms = loss.generator_terms(disc, real, fake, mask)
    assert torch.allclose(terms["total"], 2 * terms["adversarial"] + 3 * terms["feature_matching"])
    terms["total"].backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ module


class _Batches(Dataset):
    def __init__(self, count: int = 8, size: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(count, 3, size, size, generator=g) * 2 - 1
        self.masks = torch.zeros(count, 1, size, size)
        self.masks[:, :, 8:20, 10:26] = 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "mask": self.masks[index]}


def _module(**kwargs) -> GANInpaintingModule:
    torch.manual_seed(0)
    return GANInpaintingModule(
        net=GatedCANet(base_channels=4),
        loss=RecipeLoss(hole_weight=1, valid_weight=1, tv_weight=0, coarse_weight=1),
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        discriminator=SNPatchGAN(base_channels=8),
        adversarial=AdversarialLoss("hinge"),
        scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        d_scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        **kwargs,
    )


def _fit(module: GANInpaintingModule, steps: int) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, DataLoader(_Batches(), batch_size=2))
    return trainer


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items() if k in before)


def test_one_step_updates_generator_and_discriminator_and_counts_generator_steps() -> None:
    module = _module(d_steps_per_g_step=2, gradient_clip_val=1.0)
    g0, d0 = _snapshot(module.net), _snapshot(module.discriminator)
    trainer = _fit(module, steps=1)
    assert _changed(g0, module.net) and _changed(d0, module.discriminator)
    assert trainer.global_step == 1, "global_step counts generator steps only"
    opt_g, opt_d = (o.optimizer if hasattr(o, "optimizer") else o for o in trainer.optimizers)
    assert {int(s["step"]) for s in opt_g.state.values()} == {1}
    assert {int(s["step"]) for s in opt_d.state.values()} == {2}, "two D updates per G update"
    # both schedulers step once per generator step
    assert [s.scheduler.last_epoch for s in trainer.lr_scheduler_configs] == [1, 1]
    assert opt_d.param_groups[0]["lr"] == pytest.approx(0.5e-3)


def test_ema_generator_is_used_for_evaluation_and_export() -> None:
    module = _module(ema_decay=0.5)
    _fit(module, steps=2)
    ema = module.generator_for_export()
    assert ema is module.net_ema.module and int(module.net_ema.n_averaged) == 2
    assert _changed(_snapshot(ema), module.net), "EMA weights differ from the trained ones"
    batch = _Batches()[0]
    image, mask = batch["image"][None], batch["mask"][None]
    module.eval()
    with torch.no_grad():
        output, _ = module(image, mask)
        assert torch.allclose(output, ema(image * (1 - mask), mask))
        state, _ = generator_state_dict(module.state_dict())
        fresh = GatedCANet(base_channels=4).eval()
        fresh.load_state_dict(state)
        assert torch.allclose(fresh(image * (1 - mask), mask), output, atol=1e-6)
        assert generator_state_dict(module.state_dict(), prefer_ema=False)[0].keys() == state.keys()


def test_bad_module_arguments() -> None:
    with pytest.raises(ValueError, match="d_steps_per_g_step"):
        _module(d_steps_per_g_step=0)
    with pytest.raises(ValueError, match="fake_input"):
        _module(fake_input="masked")
    with pytest.raises(ValueError, match="ema_decay"):
        _module(ema_decay=1.5)
    with pytest.raises(ValueError, match="kind"):
        AdversarialLoss("wasserstein")


# ------------------------------------------------------------------------------------------------ resume


def test_gan_resume_continues_steps_optimizers_schedulers_and_ema(tiny_train_config, tmp_path: Path) -> None:
    overrides = ("experiment=sa_unet_gan", "discriminator.base_channels=8", "test=false")
    cfg = tiny_train_config(*overrides)
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    first = torch.load(last, weights_only=True)  # plain data only: no pickled optimizers or modules
    assert first["global_step"] == 2
    assert len(first["optimizer_states"]) == 2 and len(first["lr_schedulers"]) == 2
    keys = first["state_dict"].keys()
    assert any(k.startswith("discriminator.") for k in keys) and any(
        k.startswith("net_ema.module.") for k in keys
    )
    assert not [k for k in keys if "vgg" in k.lower()], "VGG weights must stay out of checkpoints"
    assert last.stat().st_size < 20e6
    assert set(first["hyper_parameters"]) >= {"d_steps_per_g_step", "ema_decay", "fake_input"}

    resumed = tiny_train_config(*overrides, f"ckpt_path={last}", "trainer.max_steps=4")
    with open_dict(resumed):
        resumed.paths.output_dir = str(tmp_path / "resumed")
    train(resumed)
    second = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert second["global_step"] == 4
    for index in (0, 1):  # generator, discriminator: Adam moments continue
        steps = {int(s["step"]) for s in second["optimizer_states"][index]["state"].values()}
        assert steps == {4}, f"optimizer {index} restarted: {steps}"
        assert second["lr_schedulers"][index]["last_epoch"] == 4
    assert int(second["state_dict"]["net_ema.n_averaged"]) == 4
    # the trained generator loads through the project's checkpoint reader (net.* keys)
    net, config = load_generator(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert config["module"]["_target_"] == "inpainting.training.gan_module.GANInpaintingModule"
    assert net.state_dict().keys() == generator_state_dict(second["state_dict"])[0].keys()


def test_gan_checkpoint_exports_and_evaluates_its_ema_generator_through_the_cli(
    tiny_train_config, tmp_path: Path
):
    """export and evaluate, run as a user runs them, take the EMA generator a GAN run validated with."""
    from tests.conftest import run_cli

    cfg = tiny_train_config("experiment=sa_unet_gan", "discriminator.base_channels=8", "test=false")
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)["state_dict"]
    ema, kind = generator_state_dict(state)
    raw, _ = generator_state_dict(state, prefer_ema=False)
    assert kind == "ema" and any(not torch.equal(ema[k], raw[k]) for k in ema), "EMA differs from the raw net"

    out = tmp_path / "g.pt"
    result = run_cli(
        [f"ckpt_path={last}", "format=generator", f"output={out}"], tmp_path, "inpainting.export"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    exported = torch.load(out, weights_only=True)
    assert exported["metadata"]["weights"] == "ema"
    assert all(torch.equal(exported["state_dict"][k], ema[k]) for k in ema)

    folder = Path(cfg.data.root)
    result = run_cli(
        ["data=folder", f"data.root={folder}", "data.image_size=32", "masks_per_image=1", "mask_sets=[thick]",
         "max_images=1", "vgg_weights=null", f"methods=[gan@ckpt:{last},exported@ckpt:{out}]",
         f"hydra.run.dir={tmp_path / 'eval'}"],
        tmp_path,
        "inpainting.evaluate",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (tmp_path / "eval" / "results.csv").read_text().splitlines()[1:]
    by_method = {row.split(",")[5]: row.split(",")[6:] for row in rows}
    assert by_method["gan"] == by_method["exported"], (
        "the checkpoint is scored with the EMA weights it exports"
    )
