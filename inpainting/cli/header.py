"""What a run says when it starts: a few header lines, and the whole composed config saved as a tree."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import rich.syntax
import rich.tree
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PRINT_ORDER = (
    "data",
    "mask",
    "model",
    "loss",
    "optimizer",
    "scheduler",
    "module",
    "trainer",
    "callbacks",
    "logger",
)


def print_config_tree(
    cfg: DictConfig, save_to: Path | None = None, order: Sequence[str] = PRINT_ORDER, show: bool = True
) -> None:
    """Save the composed config as a rich tree in the run dir (what the run ran); ``show`` also prints it."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=False) if isinstance(node, DictConfig) else str(node)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    if show:
        rich.print(tree)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        with open(save_to, "w") as file:
            rich.print(tree, file=file)


def _choice(name: str) -> str | None:
    """The option chosen for config group ``name`` (``model=unet`` -> ``unet``), when Hydra is running."""
    if not HydraConfig.initialized():
        return None
    choice = HydraConfig.get().runtime.choices.get(name)
    return str(choice) if choice is not None else None


def run_dir(cfg: DictConfig) -> Path | None:
    """This run's dir, or None for a command that makes none (conf/hydra/no_run_dir.yaml: predict, export)."""
    if "paths" not in cfg:
        return None
    if HydraConfig.initialized() and HydraConfig.get().output_subdir is None:
        return None
    return Path(cfg.paths.output_dir)


def run_header(cfg: DictConfig) -> list[str]:
    """A few lines that say what this run does and where it writes, instead of the whole config tree."""
    lines = [f"task     {cfg.get('task_name', '?')}"]
    if "model" in cfg and isinstance(cfg.model, DictConfig):
        lines.append(f"model    {_choice('model') or '?'} ({cfg.model.get('_target_', '?')})")
    elif "methods" in cfg:
        lines.append(f"methods  {', '.join(map(str, cfg.methods))}")
    else:
        lines.append(f"model    {cfg.get('ckpt_path') or 'default model (inpainting/weights)'}")
    if cfg.get("input") is not None:
        lines.append(f"input    {cfg.input}")
    elif cfg.get("pairs_root"):
        lines.append(f"pairs    {cfg.pairs_root}")
    elif "data" in cfg and isinstance(cfg.data, DictConfig):
        data = cfg.data
        root = data.get("root") or data.get("train_root")
        size = f"{data.get('image_size')}px" if "image_size" in data else ""
        batch = f"batch {data.get('batch_size')}" if "batch_size" in data else ""
        lines.append(f"data     {_choice('data') or '?'}: {root}  {size}  {batch}".rstrip())
    if _choice("experiment"):
        lines.append(f"recipe   experiment={_choice('experiment')}")
    if run_dir(cfg) is not None:
        lines.append(f"run dir  {run_dir(cfg)}")
    elif cfg.get("output"):  # no run dir: where the result goes (without output=, the last line says)
        lines.append(f"output   {cfg.output}")
    return lines


def print_run_header(cfg: DictConfig) -> None:
    """Log :func:`run_header` and save the full tree to ``<run dir>/config_tree.log`` (``verbose=true`` prints it;
    every entry config that prints a header has the key). A command without a run dir saves nothing."""
    folder = run_dir(cfg)
    save_to = folder / "config_tree.log" if folder is not None else None
    print_config_tree(cfg, save_to=save_to, show=bool(cfg.get("verbose", False)))
    for line in run_header(cfg):
        log.info(line)
    if save_to is not None and not cfg.get("verbose", False):
        log.info("config   %s (verbose=true prints it)", save_to)
