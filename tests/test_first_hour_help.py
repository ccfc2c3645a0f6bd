"""The first hour without a misleading line: each command's --help lists only its own groups (and agrees with the
README and conf/), `verbose=true` works wherever the header offers it, predict and export with `output=` leave
nothing but their output, and a training run prints neither Lightning's tips nor our own requires_grad warning."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONF_DIR, compose_config, run_cli
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from inpainting.cli.header import print_run_header
from inpainting.cli.hints import unknown_key_hint

COMMANDS = ("train", "predict", "evaluate", "export", "demo")
README = CONF_DIR.parent / "README.md"
GROUP_LINE = re.compile(r"^\s+(\w+):\s+(.+)$")


def help_groups(command: str, tmp_path: Path) -> dict[str, list[str]]:
    """``group -> options`` as the command's --help template lists them (conf/hydra/help/<command>.yaml)."""
    compose_config(tmp_path, [], command)
    template = str(OmegaConf.to_container(HydraConfig.get().help, resolve=False)["template"])
    if "== Configuration groups ==" not in template:
        return {}
    section = template.split("== Configuration groups ==", 1)[1].split("==", 1)[0]
    groups: dict[str, list[str]] = {}
    for line in section.splitlines():
        match = GROUP_LINE.match(line)
        if match:
            listed = re.split(r"\s{2,}\(", match.group(2))[0]  # the options, before a "   (note)"
            groups[match.group(1)] = [o.replace("(default)", "").strip() for o in listed.split(",")]
    return groups


def composed_groups(command: str, tmp_path: Path) -> set[str]:
    """The config groups the command composes (its defaults list), less Hydra's own and ``paths``."""
    compose_config(tmp_path, [], command)
    choices = HydraConfig.get().runtime.choices
    return {str(k) for k in choices if not str(k).startswith("hydra") and k != "paths"}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_exactly_the_groups_the_command_composes(command, tmp_path):
    assert set(help_groups(command, tmp_path)) == composed_groups(command, tmp_path)


def test_evaluate_help_names_no_training_group(tmp_path):
    proc = run_cli(["--help"], cwd=tmp_path, entry="inpainting.evaluate")
    assert proc.returncode == 0, proc.stderr
    assert "protocol:" in proc.stdout and "methods=" in proc.stdout
    for training_only in (
        "discriminator",
        "optimizer",
        "callbacks",
        "experiment",
        "scheduler",
        "hparams_search",
    ):
        assert training_only not in proc.stdout, training_only
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


def _readme_options(group: str) -> set[str]:
    row = next(line for line in README.read_text().splitlines() if line.startswith(f"| `{group}` |"))
    options = set(re.findall(r"`(\w[\w-]*)`", row.split("|")[2])) - {"_512"}
    if "(+ `_512`)" in row:
        options |= {f"{o}_512" for o in options if o.startswith("lama_")}
    return options


def _parts(folder: Path) -> set[str]:
    """Files other options of the folder include in their defaults list (trainer/default, one callback each)."""
    return {
        name
        for path in folder.glob("*.yaml")
        for name in re.findall(r"^\s+-\s+([\w-]+)\s*$", path.read_text(), re.MULTILINE)
    }


def test_train_help_readme_and_conf_list_the_same_options(tmp_path):
    groups = help_groups("train", tmp_path)
    for group, options in groups.items():
        folder = CONF_DIR / group
        on_disk = {p.stem for p in folder.glob("*.yaml")}
        assert set(options) <= on_disk, f"{group}: help lists {set(options) - on_disk}, not in conf/{group}/"
        assert on_disk - _parts(folder) <= set(options), (
            f"{group}: conf/{group}/ has options --help does not list"
        )
        assert set(options) == _readme_options(group), f"README's `{group}` row differs from train --help"


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "export"])
def test_verbose_is_a_key_of_every_command_with_a_header(command):
    assert unknown_key_hint(command, ["verbose=true"]) is None


def test_evaluate_header_hint_says_verbose_true(tmp_path, caplog, capsys):
    cfg = compose_config(tmp_path, [], "evaluate")
    with caplog.at_level(logging.INFO, logger="inpainting.cli.header"):
        print_run_header(cfg)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.endswith("(verbose=true prints it)") for line in lines), lines
    assert not any("+verbose" in line for line in lines)
    verbose = compose_config(tmp_path, ["verbose=true"], "evaluate")
    print_run_header(verbose)
    assert "CONFIG" in capsys.readouterr().out


def test_unknown_key_without_a_close_match_has_no_stray_separator():
    hint = unknown_key_hint("evaluate", ["zzqqxx=1"])
    assert "has no key `zzqqxx` (keys there: " in hint, hint
    assert "; (" not in hint and ";  " not in hint
    assert "; did you mean `seed`?" in unknown_key_hint("train", ["seeed=3"])


def _photo_and_mask(folder: Path) -> tuple[Path, Path]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / "p.png")
    mask = np.zeros((40, 48), np.uint8)
    mask[10:20, 12:30] = 255
    Image.fromarray(mask).save(folder / "p_mask.png")
    return folder / "p.png", folder / "p_mask.png"


def test_predict_with_output_leaves_only_the_output(tmp_path):
    image, mask = _photo_and_mask(tmp_path / "in")
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli(
        [f"input={image}", f"mask={mask}", "output=filled.png"], cwd=work, entry="inpainting.predict"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["filled.png"]  # no logs/, .hydra/, predict.log
    assert "run dir" not in proc.stdout and "output   filled.png" in proc.stdout


def test_export_with_output_leaves_only_the_output(tmp_path):
    proc = run_cli(["format=generator", "output=model.pt"], cwd=tmp_path, entry="inpainting.export")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_tiny_training_run_prints_no_tips(tiny_train_config, capfd, caplog):
    from inpainting.training.fit import train

    cfg = tiny_train_config("callbacks=default", "test=false")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        train(cfg)
    captured = capfd.readouterr()
    output = captured.out + captured.err + caplog.text + "\n".join(str(w.message) for w in caught)
    assert "Tip:" not in output
    assert "requires_grad=True to a scalar" not in output
    assert "GPU available" in output  # Lightning's other lines are left alone


def test_a_skipped_nan_step_makes_no_requires_grad_warning(tiny_train_config):
    module = instantiate(tiny_train_config().module)
    weight = torch.ones((), requires_grad=True)
    terms = {"total": weight * float("nan"), "l1": weight * 2}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*requires_grad=True to a scalar")
        module._skip_nonfinite_step(terms)
    assert module.nonfinite_total == 1


def test_predict_help_names_no_group(tmp_path):
    proc = run_cli(["--help"], cwd=tmp_path, entry="inpainting.predict")
    assert proc.returncode == 0, proc.stderr
    assert "== Configuration groups ==" not in proc.stdout
    assert "output=PATH" in proc.stdout and "== Config ==" in proc.stdout
