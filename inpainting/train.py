"""``python -m inpainting.train``: compose the config, instantiate, fit, return the metrics.

Thin on purpose (lightning-hydra-template's shape): everything it builds is named by a config
``_target_``; no model logic lives here.
"""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from inpainting.cli.errors import exit_on_user_error
from inpainting.cli.header import print_run_header
from inpainting.cli.hints import exit_on_unknown_key
from inpainting.cli.instantiate import check_required, instantiate_callbacks, instantiate_loggers
from inpainting.data.datasets import NoReadableImagesError
from inpainting.errors import ConfigError
from inpainting.inference.checkpoint import WANDB_ID_KEY, check_checkpoint
from inpainting.resources import conf_dir
from inpainting.training.callbacks import RunConfigInCheckpoints
from inpainting.training.guards import (
    FiniteWeightsGuard,
    SafeResumeState,
    check_learning_rates,
    checkpoint_dirs,
    is_run_checkpoint,
)
from inpainting.training.init_weights import load_initial_weights

log = logging.getLogger(__name__)


def quiet_known_warnings() -> None:
    """Lightning 2.6.6 (the newest release) builds a ``torch.utils._pytree.LeafSpec()`` in every CombinedLoader,
    which torch 2.13 deprecates with a FutureWarning printed on every fit and test. The code is Lightning's, not
    ours: silence exactly that message from exactly that module until a Lightning release uses
    ``treespec_leaf()``."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )


def _wandb_run_id(ckpt_path: str) -> str | None:
    """The wandb run a checkpoint was written by, so a resumed run continues the same wandb run.

    Read by the one checkpoint reader (``check_checkpoint``: ``weights_only=True``, registered network,
    plain-data arguments): a crafted file is refused with a one-line ``CheckpointError`` before Lightning
    touches it, and so is a file that is not a Lightning training checkpoint (a generator ``.pt``)."""
    return check_checkpoint(ckpt_path).get(WANDB_ID_KEY)


def _refuse_another_runs_dir(cfg: DictConfig) -> None:
    """Two runs writing one checkpoint folder would mix their best/last files silently: only a resume of the
    run that wrote them may use a run dir that already holds checkpoints."""
    for node in (cfg.get("callbacks") or {}).values():
        folder = (
            Path(str(node.get("dirpath"))) if isinstance(node, DictConfig) and node.get("dirpath") else None
        )
        if folder is None or not folder.is_dir():
            continue
        existing = sorted(p.name for p in folder.glob("*.ckpt"))
        resuming_here = cfg.get("ckpt_path") and Path(cfg.ckpt_path).resolve().parent == folder.resolve()
        if existing and not resuming_here:
            raise ConfigError(
                f"{folder} already holds another run's checkpoints ({', '.join(existing[:3])}); give this run "
                f"its own hydra.run.dir, or resume that run with ckpt_path={folder / 'last.ckpt'}"
            )


def _prepare_resume(cfg: DictConfig) -> None:
    if not cfg.get("ckpt_path"):
        return
    ckpt = Path(cfg.ckpt_path)
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"ckpt_path={cfg.ckpt_path}: no such checkpoint file (expected e.g. .../checkpoints/last.ckpt)"
        )
    run_id = _wandb_run_id(str(ckpt))
    if run_id and cfg.get("logger") and "wandb" in cfg.logger:
        with open_dict(cfg):
            cfg.logger.wandb.id = run_id
            cfg.logger.wandb.resume = "allow"


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and optionally test) the model the config describes; return the logged metrics."""
    check_learning_rates(cfg)
    _refuse_another_runs_dir(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    _prepare_resume(cfg)

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
    log.info("Instantiating trainer <%s>", cfg.trainer._target_)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    _keep_csv_rows(trainer)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    with warnings.catch_warnings():  # for this run only, not for whoever imported the package
        quiet_known_warnings()
        try:
            if cfg.get("train", True):
                trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
                _reload_csv_columns(trainer)
            metrics: dict[str, Any] = dict(trainer.callback_metrics)
            if cfg.get("test"):
                try:
                    trainer.test(
                        module, datamodule=datamodule, ckpt_path=_best_of_this_run(trainer), weights_only=True
                    )
                    metrics.update(trainer.callback_metrics)
                except NoReadableImagesError:
                    log.warning(
                        "test skipped: no image of the test split could be read (each is named above)"
                    )
        finally:
            _finish_wandb(trainer)
    return {k: float(v) for k, v in metrics.items()}


def _best_of_this_run(trainer: L.Trainer) -> str | None:
    """The best checkpoint to test, only when it is a file of this run's checkpoint dir (else the current
    weights): a path restored from a resumed checkpoint is data from that file, never fetched or loaded."""
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    if best and not is_run_checkpoint(best, checkpoint_dirs(trainer)):
        log.warning(
            "testing the current weights: best checkpoint %r is not in this run's checkpoint dir", best
        )
        return None
    return best


def _keep_csv_rows(trainer: L.Trainer) -> None:
    """A resume into the same run dir appends to its metrics.csv: Lightning's CSV writer deletes the file
    when it is created, so keep its rows and teach the writer their columns."""
    for logger in trainer.loggers:
        if not isinstance(logger, CSVLogger) or not trainer.is_global_zero:
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        if not path.is_file():
            continue
        rows = path.read_bytes()
        with warnings.catch_warnings():  # "previous log files ... will be deleted": not any more
            warnings.simplefilter("ignore")
            writer = logger.experiment
        path.write_bytes(rows)
        with open(path, newline="") as file:
            writer.metrics_keys = sorted(next(csv.reader(file), []))


def _reload_csv_columns(trainer: L.Trainer) -> None:
    """Teach the parent's CSVLoggers the columns that fit wrote, before test appends to the same file.

    Under ``strategy=ddp_spawn`` (``trainer=ddp_sim``) fit and test each run in fresh child processes that
    get a pickled copy of the parent's logger, so the parent never learns the columns fit wrote; test's
    child would then rewrite metrics.csv with its own columns only and fail ("dict contains fields not in
    fieldnames"). In a single process this is a no-op: the columns are already known.
    """
    for logger in trainer.loggers:
        # only a writer that exists already: creating one now would delete metrics.csv (Lightning's rule)
        writer = getattr(logger, "_experiment", None) if isinstance(logger, CSVLogger) else None
        if writer is None or not trainer.is_global_zero:
            continue
        path = Path(writer.metrics_file_path)
        if path.is_file():
            with open(path, newline="") as file:
                header = next(csv.reader(file), [])
            writer.metrics_keys = sorted(set(writer.metrics_keys) | set(header))


def _finish_wandb(trainer: L.Trainer) -> None:
    """Close the wandb run so the next Hydra multirun job starts its own (wandb keeps one per process)."""
    if any(type(logger).__name__ == "WandbLogger" for logger in trainer.loggers):
        import wandb

        wandb.finish()


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``optimized_metric`` for sweepers."""
    with exit_on_user_error():
        check_required(cfg)
        print_run_header(cfg)
        metrics = train(cfg)
    name = cfg.get("optimized_metric")
    if name and name not in metrics:
        log.warning("optimized_metric %r was not logged; available: %s", name, sorted(metrics))
        return None
    return metrics.get(name) if name else None


if __name__ == "__main__":
    exit_on_unknown_key("train")
    main()
