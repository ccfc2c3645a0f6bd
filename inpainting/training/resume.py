"""A training run's folder and its resume: only the run that wrote a checkpoint folder may write into it again,
a resume continues its wandb run, and a best-checkpoint path read from a resumed file is used only when it is a
file of this run's checkpoint folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, open_dict

from inpainting.errors import ConfigError
from inpainting.inference.checkpoint import WANDB_ID_KEY, check_checkpoint
from inpainting.training.guards import checkpoint_dirs, is_run_checkpoint

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger(__name__)


def wandb_run_id(ckpt_path: str) -> str | None:
    """The wandb run a checkpoint was written by, so a resumed run continues the same wandb run.

    Read by the one checkpoint reader (``check_checkpoint``: ``weights_only=True``, registered network,
    plain-data arguments): a crafted file is refused with a one-line ``CheckpointError`` before Lightning
    touches it, and so is a file that is not a Lightning training checkpoint (a generator ``.pt``)."""
    return check_checkpoint(ckpt_path).get(WANDB_ID_KEY)


def refuse_another_runs_dir(cfg: DictConfig) -> None:
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


def prepare_resume(cfg: DictConfig) -> None:
    if not cfg.get("ckpt_path"):
        return
    ckpt = Path(cfg.ckpt_path)
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"ckpt_path={cfg.ckpt_path}: no such checkpoint file (expected e.g. .../checkpoints/last.ckpt)"
        )
    run_id = wandb_run_id(str(ckpt))
    if run_id and cfg.get("logger") and "wandb" in cfg.logger:
        with open_dict(cfg):
            cfg.logger.wandb.id = run_id
            cfg.logger.wandb.resume = "allow"


def best_of_this_run(trainer: L.Trainer) -> str | None:
    """The best checkpoint to test, only when it is a file of this run's checkpoint dir (else the current
    weights): a path restored from a resumed checkpoint is data from that file, never fetched or loaded."""
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    if best and not is_run_checkpoint(best, checkpoint_dirs(trainer)):
        log.warning(
            "testing the current weights: best checkpoint %r is not in this run's checkpoint dir", best
        )
        return None
    return best
