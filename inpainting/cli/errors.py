"""The user-error policy of the command lines: a mistake the user can fix from the message is one line and
exit 1 (and the run dir it left empty is removed); anything else is a bug and keeps its traceback."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from inpainting.errors import UserError

log = logging.getLogger(__name__)

#: what the OS or OmegaConf raise about an option's value (a path named by an option that is missing, a file
#: where a folder is expected, no permission; a ``???`` left unset): not ours to derive from :class:`UserError`
NOT_OURS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, MissingMandatoryValue)


def is_user_error(error: BaseException) -> bool:
    """True for a mistake the user can fix from the message; False for what looks like a bug (keeps its trace).

    Every error class of this package that is the user's derives from :class:`inpainting.errors.UserError`.
    A Hydra ``InstantiationException`` is the user's when what it wraps is (a constructor refusing an option's
    value or name: ``ValueError``/``TypeError``, or a target that cannot be found); a ``ModuleNotFoundError``
    is the user's when the missing module is an optional extra, not part of this package.
    """
    if isinstance(error, (UserError, NOT_OURS)):
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
