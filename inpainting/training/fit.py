"""What ``python -m inpainting.train`` runs: instantiate what the config names, fit, test, return the metrics.

Everything built here is named by a config ``_target_`` (lightning-hydra-template's shape); no model logic lives
here. The run's folder and resume rules are :mod:`inpainting.training.resume`, metrics.csv across a resume is
:mod:`inpainting.training.csv_rows`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torchmetrics
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from inpainting.cli.instantiate import instantiate_callbacks, instantiate_loggers
from inpainting.data.datasets import NoReadableImagesError
from inpainting.data.images import NoImagesFoundError, list_images
from inpainting.errors import ConfigError
from inpainting.training.callbacks import RunConfigInCheckpoints
from inpainting.training.csv_rows import keep_csv_rows, reload_csv_columns
from inpainting.training.guards import FiniteWeightsGuard, SafeResumeState, check_learning_rates
from inpainting.training.init_weights import load_initial_weights
from inpainting.training.progress import is_terminal
from inpainting.training.resume import best_of_this_run, prepare_resume, refuse_another_runs_dir

log = logging.getLogger(__name__)

#: the data options that name a folder of the training data (``photo_root``: stills for synthetic video motion)
DATA_FOLDER_KEYS = ("root", "train_root", "val_root", "test_root", "photo_root")


#: the logger of Lightning's ``rank_zero_info`` (the "GPU available" lines, and its advertising tips)
LIGHTNING_INFO_LOGGER = "lightning.pytorch.utilities.rank_zero"


def drop_lightning_tips(record: logging.LogRecord) -> bool:
    """Logging filter: False for Lightning's "💡 Tip: ... try installing litlogger / litmodels" lines (an
    advertisement on every fit, with no option to turn it off), True for everything else it logs."""
    return not str(record.msg).startswith("💡 Tip:")


def quiet_lightning_tips() -> None:
    """Install :func:`drop_lightning_tips` (once) before a Trainer is built: the Trainer logs the first tip."""
    logger = logging.getLogger(LIGHTNING_INFO_LOGGER)
    if drop_lightning_tips not in logger.filters:
        logger.addFilter(drop_lightning_tips)


def quiet_known_warnings() -> None:
    """Lightning builds a ``torch.utils._pytree.LeafSpec()`` in every CombinedLoader, which newer torch deprecates
    with a FutureWarning printed on every fit and test. The code is Lightning's, not ours: silence exactly that
    message from exactly that module until a Lightning release uses ``treespec_leaf()``."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )


def check_data_folders(data: DictConfig) -> None:
    """Refuse a data folder that does not exist (or, for image data, holds no image) before the model, Trainer
    and loggers start: otherwise the run fails minutes later, after wandb has opened a run that never trained.

    ``root`` of the embedded sample (``sample=true``) is filled by the datamodule itself, so it may be missing.
    A video datamodule's ``root`` holds videos, so only its existence is checked.
    """
    images = str(data.get("_target_", "")).endswith(".InpaintingDataModule")
    for key in DATA_FOLDER_KEYS:
        value = data.get(key)
        if value is None or (key == "root" and data.get("sample")):
            continue
        folder = Path(str(value)).expanduser()
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise ConfigError(f"data.{key}={value}: {what}; give data.{key}=<a folder of images>")
        if images or key == "photo_root":
            try:
                list_images(folder, recursive=bool(data.get("recursive", True)))
            except NoImagesFoundError as error:
                raise ConfigError(f"data.{key}={value}: {error}") from None


def reset_metric_states(module: L.LightningModule) -> None:
    """Fresh metric states after ``trainer.validate``: it runs under ``torch.inference_mode``, so the states its
    metrics reset to are inference tensors that fit's validation (under ``no_grad``) may not update in place."""
    for metric in module.modules():
        if isinstance(metric, torchmetrics.Metric):
            metric.reset()


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and optionally test) the model the config describes; return the logged metrics."""
    check_data_folders(cfg.data)
    check_learning_rates(cfg)
    refuse_another_runs_dir(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    prepare_resume(cfg)

    log.info("Instantiating datamodule <%s>", cfg.data._target_)
    datamodule: L.LightningDataModule = instantiate(cfg.data)
    log.info("Instantiating module <%s> with net <%s>", cfg.module._target_, cfg.model._target_)
    module: L.LightningModule = instantiate(cfg.module)
    if cfg.get("init_from") and not cfg.get("ckpt_path"):  # resume restores its own weights
        load_initial_weights(module.net, str(cfg.init_from), strict=bool(cfg.get("init_strict", True)))
        if getattr(module, "net_ema", None) is not None:  # the EMA copy starts from the same weights
            module.net_ema.module.load_state_dict(module.net.state_dict())

    loggers = instantiate_loggers(cfg.get("logger"))
    callbacks = instantiate_callbacks(cfg.get("callbacks"), has_logger=bool(loggers))
    # every checkpoint carries the run's config as plain data: what export/predict/evaluate rebuild the net from
    callbacks.append(RunConfigInCheckpoints(OmegaConf.to_container(cfg, resolve=True)))
    # a resumed checkpoint restores no file path outside this run's checkpoint dir; NaN/inf weights stop the run
    callbacks += [SafeResumeState(), FiniteWeightsGuard()]
    extra: dict[str, Any] = {}
    if not is_terminal() and not any(isinstance(cb, ProgressBar) for cb in callbacks):
        extra["enable_progress_bar"] = False  # Lightning's default tqdm bar would fill a batch job's log
    log.info("Instantiating trainer <%s>", cfg.trainer._target_)
    quiet_lightning_tips()
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **extra)

    keep_csv_rows(trainer)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    with warnings.catch_warnings():  # for this run only, not for whoever imported the package
        quiet_known_warnings()
        try:
            if cfg.get("train", True):
                if cfg.get("validate_first") and not cfg.get("ckpt_path") and trainer.world_size == 1:
                    # the curve's step 0: where the untrained (or init_from) net starts, what training must beat.
                    # One process only: a spawned DDP run would start its processes twice, and its loggers'
                    # state (the CSV columns) would not carry from the validate processes to fit's
                    trainer.validate(module, datamodule=datamodule, verbose=False)
                    reset_metric_states(module)
                trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
                reload_csv_columns(trainer)
            metrics: dict[str, Any] = dict(trainer.callback_metrics)
            if cfg.get("test"):
                try:
                    trainer.test(
                        module, datamodule=datamodule, ckpt_path=best_of_this_run(trainer), weights_only=True
                    )
                    metrics.update(trainer.callback_metrics)
                except NoReadableImagesError:
                    log.warning(
                        "test skipped: no image of the test split could be read (each is named above)"
                    )
        finally:
            finish_wandb(trainer)
    return {k: float(v) for k, v in metrics.items()}


def finish_wandb(trainer: L.Trainer) -> None:
    """Close the wandb run so the next Hydra multirun job starts its own (wandb keeps one per process)."""
    if any(type(logger).__name__ == "WandbLogger" for logger in trainer.loggers):
        import wandb

        wandb.finish()
