"""``python -m inpainting.summarize DIR``: a sweep's runs as one table (frontier marked) and one plot, never over a
file it did not write; and experiment=recipe_sweep composes for every job of its grid."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from inpainting.inference.checkpoint import default_weights_path, load_generator
from inpainting.summarize import main
from inpainting.training.init_weights import split_fitting
from inpainting.training.sweep_summary import COLUMNS, write_curve
from tests.conftest import CONF_DIR, compose_config, run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fake_run(run: Path, overrides: list[str], points: list[tuple[int, float, float]]) -> None:
    """A run dir as a multirun job leaves it: .hydra/overrides.yaml and curve.csv ((step, CPU-s, PSNR) rows)."""
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    rows = [
        dict.fromkeys(COLUMNS, 0.1) | {"step": s, "cpu_seconds": c, "wall_seconds": c, "val_psnr": p}
        for s, c, p in points
    ]
    write_curve(run / "curve.csv", rows)


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Three jobs of one sweep: 0 is cheap, 1 is the best, 2 costs more than 1 for less (off the frontier)."""
    root = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    common = ["experiment=recipe_sweep", "data.root=photos"]
    _fake_run(root / "0", [*common, "optimizer.lr=2e-4"], [(50, 40.0, 28.0), (100, 80.0, 30.0)])
    _fake_run(
        root / "1", [*common, "optimizer.lr=5e-4"], [(50, 60.0, 29.0), (100, 120.0, 31.5), (120, 150.0, 31.0)]
    )
    _fake_run(root / "2", [*common, "loss=l1"], [(100, 200.0, 30.5)])
    return root


def _table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| run")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_summarize_ranks_the_runs_by_final_psnr_and_marks_the_frontier(sweep):
    text = main([str(sweep)])
    assert (sweep / "summary.md").read_text() == text
    assert (sweep / "summary.png").read_bytes()[:8] == PNG_MAGIC
    assert "Common overrides: `experiment=recipe_sweep data.root=photos`" in text
    rows = _table_rows(text)
    # run | overrides | steps | CPU-s | best | final | SSIM | frontier
    assert [r[0] for r in rows] == ["1", "2", "0"]
    assert rows[0][1:7] == ["optimizer.lr=5e-4", "120", "150", "31.50", "31.00", "0.1000"]
    # 2 reached less PSNR than 1 with more CPU time: off the frontier; 0 is cheapest: on it
    assert {r[0]: r[7] for r in rows} == {"1": "★", "2": "", "0": "★"}


def test_summarize_never_replaces_a_summary_unless_told(sweep):
    (sweep / "summary.md").write_text("my notes")
    with pytest.raises(SystemExit) as exit_code:
        main([str(sweep)])
    assert exit_code.value.code == 1
    assert (sweep / "summary.md").read_text() == "my notes"
    assert not (sweep / "summary.png").exists()  # both are checked before either is written
    main([str(sweep), "--overwrite"])
    assert (sweep / "summary.md").read_text().startswith("# Sweep summary")


def test_summarize_of_a_folder_without_runs_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_cli([str(tmp_path / "empty")], cwd=tmp_path, entry="inpainting.summarize")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert str(tmp_path / "empty") in line and "curve.csv" in line and "multiruns" in line


def _sweep_jobs() -> list[list[str]]:
    """Every job of experiment=recipe_sweep: the product of its hydra.sweeper.params, as the basic sweeper runs."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=recipe_sweep"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.hydra.sweeper._target_.endswith("BasicSweeper") and cfg.hydra.mode.name == "MULTIRUN"
    axes = [
        [f"{key}={value}" for value in str(values).split(",")]
        for key, values in cfg.hydra.sweeper.params.items()
    ]
    return [list(job) for job in itertools.product(*axes)]


def test_every_job_of_the_recipe_sweep_composes_and_fits_the_shipped_weights(tmp_path):
    jobs = _sweep_jobs()
    assert len(jobs) >= 8
    shipped = load_generator(default_weights_path())[0].state_dict()
    seen, losses = set(), {}
    for job in jobs:
        cfg = compose_config(tmp_path, ["experiment=recipe_sweep", f"data.root={tmp_path}", *job])
        assert cfg.init_from == "default" and cfg.init_strict
        assert cfg.callbacks.cpu_budget.max_cpu_seconds > 0 and cfg.data.num_workers == 0
        for override in job:  # each job really sets what it says
            key, value = override.split("=")
            if key == "loss":
                if value not in losses:
                    losses[value] = compose_config(tmp_path, [f"loss={value}"]).loss
                assert cfg.loss == losses[value]
            else:
                assert OmegaConf.select(cfg, key) == yaml.safe_load(value), override
        # init_from=default with init_strict: every layer of the configured net is in the shipped file
        _, wrong_shape, missing = split_fitting(instantiate(cfg.model).state_dict(), shipped)
        assert not wrong_shape and not missing, job
        seen.add(tuple(job))
    assert len(seen) == len(jobs)
    GlobalHydra.instance().clear()
