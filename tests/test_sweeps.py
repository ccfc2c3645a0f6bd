"""Hyperparameter search (hparams_search=optuna), one wandb group per sweep, and the SLURM launcher config.

The Hydra plugins are optional installs (see conf/hparams_search/optuna.yaml for why the Optuna sweeper is
installed with --no-deps): without them these tests are skipped, with the reason printed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class

from tests.conftest import CONF_DIR, TINY_OVERRIDES, run_cli

REPO_ROOT = CONF_DIR.parent


def _run_cli(args: list[str], cwd: Path):
    return run_cli(args, cwd, full_error=True)


def _best_val_psnr(run: Path) -> float:
    """The best val/psnr the run's ModelCheckpoint saw (its state is stored in last.ckpt)."""
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    states = [s for k, s in checkpoint["callbacks"].items() if "val/psnr" in k]
    return float(states[0]["best_model_score"])


@pytest.mark.slow  # two training jobs plus wandb start-up: ~30 s on 2 shared cores
def test_optuna_search_runs_trials_and_optimises_the_returned_metric(tmp_path, image_folder):
    pytest.importorskip(
        "hydra_plugins.hydra_optuna_sweeper", reason="pip install --no-deps hydra-optuna-sweeper"
    )
    result = _run_cli(
        [
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            *TINY_OVERRIDES,
            "logger=wandb",
            f"data.root={image_folder}",
            "test=false",
            f"paths.root_dir={tmp_path}",  # the default sweep dir: logs/train/multiruns/<time>
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    summary = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    jobs = [sweep_dir / name for name in ("0", "1")]
    # each trial ran with its own sampled values from the search space
    configs = [
        torch.load(j / "checkpoints" / "last.ckpt", weights_only=True)["inpainting_config"] for j in jobs
    ]
    lrs = [c["optimizer"]["lr"] for c in configs]
    assert all(1e-5 <= lr <= 2e-3 for lr in lrs) and lrs[0] != lrs[1]
    assert all(c["model"]["window_size"] in (4, 8, 16) for c in configs)
    assert set(summary["best_params"]) == {
        "optimizer.lr",
        "loss.hole_weight",
        "loss.tv_weight",
        "model.window_size",
        "model.num_heads",
    }
    # the value the sweeper optimised is what train's main returned: optimized_metric (val/psnr), maximised
    assert summary["best_value"] == pytest.approx(max(_best_val_psnr(j) for j in jobs), rel=1e-6)
    # one wandb group for the whole search, named after its launch time (the sweep dir's name)
    groups = {c["logger"]["wandb"]["group"] for c in configs}
    assert groups == {f"train_{sweep_dir.name}"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", sweep_dir.name)
    assert all(list((j / "wandb").glob("offline-run-*")) for j in jobs), "one wandb run per trial"


def _compose_with_hydra(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_config_composes_with_one_task_per_gpu(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install hydra-submitit-launcher")
    try:
        cfg = _compose_with_hydra(
            "hydra/launcher=slurm",
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            f"paths.root_dir={tmp_path}",
        )
        launcher = cfg.hydra.launcher
        assert get_class(launcher._target_).__name__ == "SlurmLauncher"
        assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
        assert launcher.submitit_folder.startswith(f"{tmp_path}/logs/train/multiruns/")
        assert launcher.submitit_folder.endswith("/.submitit/%j")
        cfg = _compose_with_hydra("hydra/launcher=slurm")  # trainer=cpu: one task, one node
        assert (cfg.hydra.launcher.tasks_per_node, cfg.hydra.launcher.nodes) == (1, 1)
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.slow  # one tiny job through submitit's local executor: ~15 s
def test_submitit_local_executor_runs_a_job(tmp_path, image_folder):
    """The submitit code path of the SLURM launcher, run with its local executor (no SLURM here)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install hydra-submitit-launcher")
    sweep_dir = tmp_path / "submitit"
    result = _run_cli(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "hydra.launcher.gpus_per_node=0",
            "model=unet",
            *TINY_OVERRIDES,
            f"data.root={image_folder}",
            "test=false",
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(sweep_dir / "0" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert list((sweep_dir / ".submitit").glob("*/*_0_log.out")), "submitit wrote the job's log"
