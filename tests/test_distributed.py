"""DDP on CPU (trainer=ddp_sim: 2 spawned processes, gloo): the same numbers as one process, and sweeps work.

Training itself cannot match across world sizes (each rank draws its own training masks), so the comparison
is validation of the same weights: 2 processes x batch 2 against 1 process x batch 4 (the same global batch).
The validation masks come from ``default_rng((mask_seed, index))``, so each image gets the same mask whichever
rank serves it; the val split has 4 images so Lightning's DistributedSampler pads nothing (with a count not
divisible by the world size it repeats samples to even out the ranks, and metrics shift slightly).
"""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import default_collate

from tests.conftest import CONF_DIR, TINY_OVERRIDES, run_cli, write_tiny_images

REPO_ROOT = CONF_DIR.parent
# PSNR is computed from the summed squared error over all pixels and SSIM is a mean over images, so both
# reduce exactly across ranks; what is left is float32 summation order (measured: below 1e-6 relative).
REL_TOL = 1e-5


def _validate(cfg, module: L.LightningModule) -> dict[str, float]:
    datamodule = instantiate(cfg.data)
    trainer: L.Trainer = instantiate(
        cfg.trainer, logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[]
    )
    results = trainer.validate(module, datamodule=datamodule, verbose=False)
    assert trainer.world_size == cfg.trainer.devices
    return {k: float(v) for k, v in results[0].items()}


def test_ddp_sim_validation_matches_single_process_on_the_same_weights(tiny_train_config, tmp_path):
    val_root = tmp_path / "val"
    write_tiny_images(val_root, count=4, seed=7)
    single_cfg = tiny_train_config("trainer=cpu", "data.batch_size=4", f"data.val_root={val_root}")
    ddp_cfg = tiny_train_config("trainer=ddp_sim", "data.batch_size=2", f"data.val_root={val_root}")
    assert ddp_cfg.trainer.strategy == "ddp_spawn" and ddp_cfg.trainer.devices == 2

    L.seed_everything(0)
    module = instantiate(single_cfg.module)
    weights = {k: v.clone() for k, v in module.state_dict().items()}

    single = _validate(single_cfg, module)
    distributed = _validate(ddp_cfg, module)

    assert all(torch.equal(v, module.state_dict()[k]) for k, v in weights.items()), (
        "validation changed weights"
    )
    assert set(single) == set(distributed)
    metrics = [k for k in single if k != "val/loss"]
    assert {"val/psnr", "val/ssim"} <= set(metrics)
    for key in metrics:
        assert distributed[key] == pytest.approx(single[key], rel=REL_TOL), key

    # val/loss is not batch-composition invariant (the L1 terms pool pixels over the batch and divide by the
    # batch's hole area), so it is checked against its own definition: each rank's batch loss (the
    # DistributedSampler gives rank r the indices r, r+2, ...), averaged by sync_dist across the 2 ranks.
    datamodule = instantiate(single_cfg.data)
    datamodule.setup("validate")
    rank_losses = []
    with torch.no_grad():
        for rank in range(2):
            batch = default_collate([datamodule.val_dataset[i] for i in range(rank, 4, 2)])
            output, composite = module(batch["image"], batch["mask"])
            rank_losses.append(float(module.loss(output, composite, batch["image"], batch["mask"])["total"]))
    assert distributed["val/loss"] == pytest.approx(sum(rank_losses) / 2, rel=REL_TOL)


def _run_cli(args: list[str], cwd: Path):
    return run_cli(args, cwd, full_error=True)


def test_multirun_with_ddp_sim_runs_each_job_in_one_directory(tmp_path, image_folder):
    """`-m` + ddp_spawn: every job trains on 2 processes, writes one run directory, rank 0 writes the files."""
    sweep_dir = tmp_path / "sweep"
    result = _run_cli(
        [
            "-m",
            "model=sa_unet,unet",
            "trainer=ddp_sim",
            *TINY_OVERRIDES,
            f"data.root={image_folder}",
            "test=false",  # fit + test under spawn: test_single_ddp_sim_run_... below
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1"]
    for job in ("0", "1"):
        run = sweep_dir / job
        checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        assert checkpoint["global_step"] == 2
        assert checkpoint["inpainting_config"]["trainer"]["strategy"] == "ddp_spawn"
        assert len(list((run / "checkpoints").glob("best-step*.ckpt"))) == 1
        with open(run / "csv" / "metrics.csv") as file:
            rows = list(csv.DictReader(file))
        val_psnr = [float(r["val/psnr"]) for r in rows if r.get("val/psnr")]
        assert len(val_psnr) == 1 and val_psnr[0] > 0, "one synced validation, logged once (rank 0)"
        train_steps = [int(r["step"]) for r in rows if r.get("train/loss")]
        assert train_steps == [0, 1], "each step logged once, by rank 0 only"
    # nothing was written outside the sweep: no second Hydra run directory from a re-launched child
    assert not (tmp_path / "logs" / "train" / "runs").exists()


@pytest.mark.slow  # fit and test each spawn 2 workers, plus wandb: ~40 s on 2 shared cores
def test_single_ddp_sim_run_fits_tests_and_logs_once_to_every_logger(tmp_path, image_folder):
    """The plain CLI run: fit then test (each in fresh spawned workers) append to one metrics.csv, one wandb
    run and one TensorBoard directory, all written by rank 0."""
    run = tmp_path / "run"
    result = _run_cli(
        [
            "trainer=ddp_sim",
            *TINY_OVERRIDES,
            "logger=many",
            f"data.root={image_folder}",
            f"paths.root_dir={tmp_path}",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(run / "csv" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    for key in ("train/loss", "val/psnr", "test/psnr"):
        assert len([r for r in rows if r.get(key)]) == (2 if key == "train/loss" else 1), key
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"last.ckpt", "best-step0000002.ckpt"}
