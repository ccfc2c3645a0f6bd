"""Small helpers between Hydra configs and Lightning objects, shared by the entry points."""

from __future__ import annotations

import difflib
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import rich.syntax
import rich.tree
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, InstantiationException, OverrideParseException
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from inpainting.errors import ConfigError, UserError
from inpainting.inference.checkpoint import CheckpointError
from inpainting.models.registry import UnsafeModelConfig
from inpainting.resources import conf_dir

if TYPE_CHECKING:  # Lightning is imported where it is used: predict/export/demo start without it
    import lightning as L
    from lightning.pytorch.loggers import Logger

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


def instantiate_dict(cfg: DictConfig | None, kind: str) -> list:
    """Instantiate every ``_target_`` entry of a name -> config mapping (the callbacks/logger groups)."""
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"{kind} config must be a mapping of name -> config, got {type(cfg).__name__}")
    objects = []
    for name, node in cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            log.debug("Instantiating %s <%s> (%s)", kind, node._target_, name)
            objects.append(instantiate(node))
    return objects


def instantiate_callbacks(cfg: DictConfig | None, has_logger: bool) -> list[L.Callback]:
    """Callbacks from config; LearningRateMonitor is dropped when no logger could receive it."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    callbacks = instantiate_dict(cfg, "callback")
    if not has_logger:
        kept = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
        if len(kept) != len(callbacks):
            log.info("No logger configured: LearningRateMonitor disabled")
        callbacks = kept
    return callbacks


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    return instantiate_dict(cfg, "logger")


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
    if "paths" in cfg:
        lines.append(f"run dir  {cfg.paths.output_dir}")
    return lines


def print_run_header(cfg: DictConfig) -> None:
    """Log :func:`run_header` and save the full tree to ``<run dir>/config_tree.log`` (``verbose=true`` prints it)."""
    save_to = Path(cfg.paths.output_dir) / "config_tree.log" if "paths" in cfg else None
    print_config_tree(cfg, save_to=save_to, show=bool(cfg.get("verbose", False)))
    for line in run_header(cfg):
        log.info(line)
    if save_to is not None and not cfg.get("verbose", False):
        flag = "verbose=true" if "verbose" in cfg else "+verbose=true"
        log.info("config   %s (%s prints it)", save_to, flag)


# ------------------------------------------------------------------------------------------------------------
# user errors: one line and exit 1; anything else keeps its traceback
# ------------------------------------------------------------------------------------------------------------

#: errors that are mistakes in configuration or input even though they are not :class:`UserError`s
USER_ERROR_TYPES: tuple[type[BaseException], ...] = (
    UserError,
    CheckpointError,  # a file given as ckpt_path that is not a usable checkpoint
    UnsafeModelConfig,  # a checkpoint naming an unregistered network
    FileNotFoundError,  # a path named by an option
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    MissingMandatoryValue,  # a `???` option left unset (data.root, mask.root)
)


def is_user_error(error: BaseException) -> bool:
    """True for a mistake the user can fix from the message; False for what looks like a bug (keeps its trace).

    A Hydra ``InstantiationException`` is the user's when what it wraps is (a constructor refusing an option's
    value or name: ``ValueError``/``TypeError``, or a target that cannot be found); a ``ModuleNotFoundError``
    is the user's when the missing module is an optional extra, not part of this package.
    """
    if isinstance(error, USER_ERROR_TYPES):
        return True
    if isinstance(error, ModuleNotFoundError):
        return not (error.name or "").startswith("inpainting")
    if isinstance(error, InstantiationException):
        cause = error.__cause__
        return cause is None or isinstance(cause, ValueError | TypeError) or is_user_error(cause)
    return False


def user_error_message(error: BaseException) -> str:
    """One line: the error itself, or for a config object that failed to build, what its constructor said and
    which config node it was (Hydra's own message is three lines around the same facts)."""
    cause = error.__cause__
    if isinstance(error, InstantiationException) and cause is not None:
        key = re.search(r"full_key: (\S+)", str(error))
        where = f" (config `{key.group(1)}`)" if key else ""
        return f"{type(cause).__name__}: {cause}{where}"
    if isinstance(error, MissingMandatoryValue):
        key = error.full_key or "?"
        return f"{key} is required but not set: give it on the command line, e.g. {key}=/path/to/folder"
    return f"{type(error).__name__}: {error}"


def check_required(cfg: DictConfig) -> None:
    """Refuse a config with an unset ``???`` option before anything starts, naming the option itself
    (``mask.root``; OmegaConf would name the interpolation that reached it, ``data.mask_generator.root``)."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        example = " ".join(f"{key}=..." for key in missing)
        raise ConfigError(f"{', '.join(missing)} must be set: give it on the command line ({example})")


#: run/sweep dir (absolute) -> (its entries before Hydra ran, or None when it did not exist; its nearest
#: ancestor that existed then), noted by :class:`RunDirRecorder` before Hydra creates the folder
_BEFORE: dict[Path, tuple[frozenset[str] | None, Path]] = {}


def _note_before(folder: str) -> None:
    path = Path(os.path.abspath(folder))
    entries = frozenset(p.name for p in path.iterdir()) if path.is_dir() else None
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    _BEFORE[path] = (entries, ancestor)


class RunDirRecorder(Callback):
    """Hydra callback (conf/hydra/default.yaml): before Hydra creates the run (or sweep) dir, note whether it
    existed and what it held, so the clean-up after a config error removes only what this run created."""

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        HydraConfig.instance().set_config(config)  # what run_job does next: ${hydra:runtime.cwd} resolves
        _note_before(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        HydraConfig.instance().set_config(config)
        _note_before(config.hydra.sweep.dir)


def _run_dir_before(run_dir: Path) -> tuple[frozenset[str] | None, Path] | None:
    """``(entries before, ancestor to keep)`` of this run's dir; None when unknown (then nothing is removed).

    ``entries`` is None for a folder this run created. A multirun job's dir is judged by the sweep dir's record.
    """
    if run_dir in _BEFORE:
        return _BEFORE[run_dir]
    if run_dir.parent in _BEFORE:
        sweep_entries, ancestor = _BEFORE[run_dir.parent]
        if sweep_entries is None:
            return None, ancestor
        if run_dir.name not in sweep_entries:
            return None, run_dir.parent
    return None


def _remove_if_empty_run_dir() -> None:
    """A run that failed on its config wrote nothing worth keeping: remove what it created in its run dir.

    A run dir this run created is removed when it holds only Hydra's files (``.hydra``, the job log,
    ``config_tree.log``), with the parents this run created; in a folder that existed before, only those files
    that were not there before are removed, never the folder or anything else in it.
    """
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    run_dir = Path(os.path.abspath(hydra_cfg.runtime.output_dir))
    record = _run_dir_before(run_dir)
    if record is None or not run_dir.is_dir():
        return
    before, ancestor = record
    ours = {hydra_cfg.output_subdir, f"{hydra_cfg.job.name}.log", "config_tree.log"}
    log_file = OmegaConf.select(hydra_cfg, "job_logging.handlers.file.filename", default=None)
    if log_file:
        ours.add(Path(str(log_file)).name)
    if before is not None:  # the user's folder: take back only the files this run added
        for name in ours - before:
            path = run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink(missing_ok=True)
        return
    if not {p.name for p in run_dir.iterdir()} <= ours:
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    # and the parents this run created (logs/train/runs/), never a folder that existed before it started
    parent = run_dir.parent
    while parent != ancestor and ancestor in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """In an entry point: report a configuration/input mistake as one clear line and exit 1 instead of a
    deep stack trace (and remove the run dir it left empty); ``HYDRA_FULL_ERROR=1`` re-raises it with the
    traceback. Anything that is not a user error (:func:`is_user_error`) propagates with its traceback."""
    try:
        yield
    except Exception as error:
        if not is_user_error(error):
            raise
        log.error("%s", user_error_message(error))
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _remove_if_empty_run_dir()
        log.error("Set HYDRA_FULL_ERROR=1 to see the full traceback.")
        sys.exit(1)


# ------------------------------------------------------------------------------------------------------------
# "did you mean": a typo'd key on the command line
# ------------------------------------------------------------------------------------------------------------

_MISSING_KEY = re.compile(r"Could not override '([^']+)'")


def unknown_key_hint(config_name: str, overrides: Sequence[str]) -> str | None:
    """The message for a ``key=value`` override whose key does not exist, with the closest existing keys.

    Hydra says only "Key 'batchsize' is not in struct"; this composes the config once more (a fraction of a
    second, only when Hydra is about to fail the same way) to find what was meant. None when composition works
    or fails for another reason (Hydra's own message is then the right one).
    """
    plain = [o for o in overrides if not o.startswith(("-", "hydra.", "hydra/"))]
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            compose(config_name=config_name, overrides=plain)
            return None
    except OverrideParseException as error:
        return override_parse_hint(error)
    except ConfigCompositionException as error:
        match = _MISSING_KEY.search(str(error))
        if match is None:
            return None
        key = match.group(1)
        parent_path, _, leaf = key.rpartition(".")
        groups = [o for o in plain if "=" in o and (conf_dir() / o.split("=", 1)[0].lstrip("+~")).is_dir()]
        try:
            with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
                cfg = compose(config_name=config_name, overrides=groups)
        except ConfigCompositionException:
            return None
        parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
        if not isinstance(parent, DictConfig):
            return None
        close = difflib.get_close_matches(leaf, [str(k) for k in parent], n=3, cutoff=0.6)
        where = f"`{parent_path}`" if parent_path else "the top level"
        hint = f"did you mean {' or '.join(f'`{c}`' for c in close)}? " if close else ""
        return (
            f"Could not override '{key}': {where} has no key `{leaf}`; {hint}"
            f"(keys there: {', '.join(sorted(map(str, parent)))}; to add a new key use +{key}=...)"
        )


def override_parse_hint(error: OverrideParseException) -> str:
    """One line for an override Hydra's grammar refuses: which one, and how to quote a value with spaces,
    non-ASCII letters or other special characters (Hydra's own message is a lexer trace)."""
    key, _, value = str(error.override).partition("=")
    example = f"'{key}=\"{value}\"'" if value else "'data.root=\"/my photos\"'"
    return (
        f"cannot parse the override {error.override!r}: quote a value holding spaces, non-ASCII letters or "
        f"special characters, e.g. {example} (single quotes for the shell, double quotes for Hydra)"
    )


def exit_on_unknown_key(config_name: str, argv: Sequence[str] | None = None) -> None:
    """Before ``@hydra.main`` runs: a typo'd key gets "did you mean" and exit 1 (no run dir is created)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a.startswith("-") for a in args):  # --multirun, --help, --cfg: leave them to Hydra
        return
    for arg in args:  # hydra.* overrides are not composed below, but Hydra's parser refuses them all the same
        try:
            OverridesParser.create().parse_overrides([arg])
        except OverrideParseException as error:
            print(f"Error: {override_parse_hint(error)}", file=sys.stderr)
            sys.exit(1)
    hint = unknown_key_hint(config_name, args)
    if hint:
        print(f"Error: {hint}", file=sys.stderr)
        sys.exit(1)
