"""Adversarial training: the InpaintingModule plus a discriminator, with Lightning's manual optimization.

Why manual optimization (Lightning's GAN example): two optimizers stepped on different losses in a chosen order and
ratio, with the generator's output reused by both. Per training batch:

1. the generator runs once (``self.net``); the fake shown to D is the composite (DeepFill v2) or the raw output
   (LaMa), ``fake_input``;
2. ``d_steps_per_g_step`` discriminator updates on (real, detached fake), under ``toggled_optimizer`` so only D's
   parameters get gradients;
3. one generator update on reconstruction loss (``loss``, e.g. :class:`~inpainting.losses.recipe.RecipeLoss`,
   with the coarse stage when the network has one) + adversarial terms (``adversarial``);
4. optional EMA update of the generator, then both LR schedulers step (per generator step, or per epoch).

``trainer.global_step`` counts **generator** steps only (discriminator steps are kept out of Lightning's step counter,
see :func:`_uncounted`), so ``trainer.max_steps``, the cosine schedule's ``T_max``, ``val_check_interval`` and
checkpoint intervals keep their meaning whatever the D:G ratio.

Gradient clipping: Lightning refuses ``trainer.gradient_clip_val`` under manual optimization; set
``module.gradient_clip_val`` (and ``module.gradient_clip_algorithm``) instead: applied to each optimizer's step.

EMA: ``ema_decay`` (e.g. 0.999) keeps ``net_ema = AveragedModel(net)`` (``torch.optim.swa_utils``, EMA of
parameters and buffers), updated after every generator step and used for validation, test, predict and export.
Lightning 2.6's ``WeightAveraging``/``EMAWeightAveraging`` callbacks average the *whole* LightningModule
(discriminator included) and swap weights in and out around validation; averaging only the generator inside the
module is cheaper and keeps the EMA in the module's ``state_dict``. Checkpoint keys: ``net.*`` (the trained
generator, what :func:`inpainting.inference.checkpoint.load_generator` reads), ``net_ema.module.*`` and ``net_ema.n_averaged``
(the EMA), ``discriminator.*``; ``optimizer_states``/``lr_schedulers`` hold both optimizers and schedulers (G
first). :meth:`GANInpaintingModule.generator_for_export` returns the network to export (the EMA when there is
one) and :func:`inpainting.inference.checkpoint.generator_state_dict` extracts it from a checkpoint's ``state_dict``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from inpainting.inference.checkpoint import EMA_PREFIX
from inpainting.losses.adversarial import AdversarialLoss
from inpainting.training.generator_step import generate, reconstruction_terms
from inpainting.training.module import InpaintingModule, OptimizerFactory, SchedulerFactory

log = logging.getLogger(__name__)

__all__ = ["EMA_PREFIX", "GANInpaintingModule"]

FAKE_INPUTS = ("composite", "output")


def _do_nothing() -> None:
    return None


@contextmanager
def _uncounted(optimizer: Any) -> Iterator[None]:
    """Step ``optimizer`` without advancing ``trainer.global_step``.

    Under manual optimization Lightning counts every ``LightningOptimizer.step()`` (through the hooks its manual loop
    installs as ``_on_before_step``/``_on_after_step``), so one D and one G step would make 2 "global steps". The
    discriminator's step still goes through the strategy/precision plugin (AMP scaling), only the count is skipped.
    """
    if not (hasattr(optimizer, "_on_before_step") and hasattr(optimizer, "_on_after_step")):
        yield
        return
    before, after = optimizer._on_before_step, optimizer._on_after_step
    optimizer._on_before_step = optimizer._on_after_step = _do_nothing
    try:
        yield
    finally:
        optimizer._on_before_step, optimizer._on_after_step = before, after


class GANInpaintingModule(InpaintingModule):
    """:class:`InpaintingModule` + discriminator, adversarial loss, D:G ratio, manual clipping, optional EMA.

    Args (beyond :class:`InpaintingModule`'s):
        discriminator: the discriminator network (:mod:`inpainting.models.discriminators`).
        adversarial: :class:`~inpainting.losses.adversarial.AdversarialLoss` (kind and weights).
        d_optimizer, d_scheduler: partial constructors for D; ``d_optimizer=None`` uses ``optimizer``'s,
            ``d_scheduler=None`` keeps D's learning rate constant.
        d_steps_per_g_step: discriminator updates per generator update (each on the batch's real images and the
            same detached fake: the generator does not change in between).
        fake_input: what D sees as fake: ``"composite"`` (DeepFill v2) or ``"output"`` (LaMa).
        ema_decay: None (off) or the EMA decay of the generator (e.g. 0.999).
        gradient_clip_val, gradient_clip_algorithm: clipping applied to both optimizers' gradients.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        discriminator: nn.Module,
        adversarial: AdversarialLoss,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "step",
        max_nonfinite_steps: int = 10,
        d_optimizer: OptimizerFactory | None = None,
        d_scheduler: SchedulerFactory | None = None,
        d_steps_per_g_step: int = 1,
        fake_input: str = "composite",
        ema_decay: float | None = None,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
    ) -> None:
        # InpaintingModule.__init__ is called explicitly, not via super(): Lightning's save_hyperparameters (in the
        # parent) collects the arguments of every __init__ frame that uses super(), which would store the
        # discriminator and the partial optimizers as hyperparameters (and make checkpoints need pickled objects).
        InpaintingModule.__init__(
            self, net, loss, optimizer, scheduler, scheduler_interval, max_nonfinite_steps
        )
        if d_steps_per_g_step < 1:
            raise ValueError(f"d_steps_per_g_step must be >= 1, got {d_steps_per_g_step}")
        if fake_input not in FAKE_INPUTS:
            raise ValueError(f"fake_input must be one of {FAKE_INPUTS}, got {fake_input!r}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or null, got {ema_decay}")
        if gradient_clip_val is not None and gradient_clip_val <= 0:
            raise ValueError(f"gradient_clip_val must be > 0 or null, got {gradient_clip_val}")
        if gradient_clip_algorithm not in ("norm", "value"):
            raise ValueError(
                f"gradient_clip_algorithm must be 'norm' or 'value', got {gradient_clip_algorithm!r}"
            )
        self.save_hyperparameters(
            {
                "d_steps_per_g_step": d_steps_per_g_step,
                "fake_input": fake_input,
                "ema_decay": ema_decay,
                "gradient_clip_val": gradient_clip_val,
                "gradient_clip_algorithm": gradient_clip_algorithm,
            },
            logger=False,
        )
        self.automatic_optimization = False
        self.discriminator = discriminator
        self.adversarial = adversarial
        self.d_optimizer_factory = d_optimizer
        self.d_scheduler_factory = d_scheduler
        self.net_ema: AveragedModel | None = None
        if ema_decay is not None:
            self.net_ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
            self.net_ema.requires_grad_(False)  # never trained: keeps it out of DDP's gradient buckets

    # ------------------------------------------------------------------------------------------------ generator

    def generator_for_export(self) -> nn.Module:
        """The generator to evaluate and export: the EMA copy when ``ema_decay`` is set, else ``net``."""
        return self.net_ema.module if self.net_ema is not None else self.net

    def forward(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """As :meth:`InpaintingModule.forward`; outside training it runs :meth:`generator_for_export`."""
        step = generate(self.net if self.training else self.generator_for_export(), image, mask)
        return step.output, step.composite

    def _shared_step(self, batch: dict[str, Any]) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Validation/test: the reconstruction terms of the exported generator (no adversarial terms)."""
        step = generate(
            self.net if self.training else self.generator_for_export(), batch["image"], batch["mask"]
        )
        return (
            reconstruction_terms(self.loss, step, batch["image"], batch["mask"]),
            step.output,
            step.composite,
        )

    # ------------------------------------------------------------------------------------------------- training

    def _clip(self, optimizer: Any) -> None:
        if self.hparams.gradient_clip_val is not None:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.hparams.gradient_clip_val,
                gradient_clip_algorithm=self.hparams.gradient_clip_algorithm,
            )

    def _schedulers(self) -> list[Any]:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return list(schedulers) if isinstance(schedulers, list | tuple) else [schedulers]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor] | None:
        opt_g, opt_d = self.optimizers()
        image, mask = batch["image"], batch["mask"]
        batch_size = image.shape[0]
        step = generate(self.net, image, mask)
        fake = step.composite if self.hparams.fake_input == "composite" else step.output

        d_terms: dict[str, Tensor] = {}
        with self.toggled_optimizer(opt_d):
            for _ in range(self.hparams.d_steps_per_g_step):
                d_terms = self.adversarial.discriminator_terms(self.discriminator, image, fake.detach(), mask)
                if not torch.isfinite(d_terms["total"]):
                    log.warning("non-finite discriminator loss at step %d: D step skipped", self.global_step)
                    break
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(d_terms["total"])
                self._clip(opt_d)
                with _uncounted(opt_d):
                    opt_d.step()

        with self.toggled_optimizer(opt_g):
            terms = reconstruction_terms(self.loss, step, image, mask)
            g_terms = self.adversarial.generator_terms(self.discriminator, image, fake, mask)
            total = terms["total"] + g_terms["total"]
            if not torch.isfinite(total):
                return self._skip_nonfinite_step({**terms, **{f"g_{k}": v for k, v in g_terms.items()}})
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(total)
            self._clip(opt_g)
            opt_g.step()
        self.nonfinite_in_a_row = 0
        if self.net_ema is not None:
            self.net_ema.update_parameters(self.net)
        if self.hparams.scheduler_interval == "step":
            for scheduler in self._schedulers():
                scheduler.step()

        logged = {f"train/{k}": v for k, v in terms.items() if k != "total"}
        logged.update({f"train/g_{k}": v for k, v in g_terms.items() if k != "total"})
        logged.update({f"train/d_{k.removeprefix('d_')}": v for k, v in d_terms.items() if k != "total"})
        if "total" in d_terms:
            logged["train/d_loss"] = d_terms["total"]
        self.log_dict({k: v.detach() for k, v in logged.items()}, batch_size=batch_size)
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=batch_size)
        return {"loss": total.detach(), "output": step.output.detach(), "composite": step.composite.detach()}

    def on_train_epoch_end(self) -> None:
        if self.hparams.scheduler_interval == "epoch":
            for scheduler in self._schedulers():
                scheduler.step()

    def configure_optimizers(self) -> list[dict[str, Any]]:
        opt_g = self.optimizer_factory(params=self.net.parameters())
        opt_d = (self.d_optimizer_factory or self.optimizer_factory)(params=self.discriminator.parameters())
        configs: list[dict[str, Any]] = [{"optimizer": opt_g}, {"optimizer": opt_d}]
        interval = self.hparams.scheduler_interval
        if self.scheduler_factory is not None:
            configs[0]["lr_scheduler"] = {
                "scheduler": self.scheduler_factory(optimizer=opt_g),
                "interval": interval,
                "name": "lr-generator",
            }
        if self.d_scheduler_factory is not None:
            configs[1]["lr_scheduler"] = {
                "scheduler": self.d_scheduler_factory(optimizer=opt_d),
                "interval": interval,
                "name": "lr-discriminator",
            }
        return configs
