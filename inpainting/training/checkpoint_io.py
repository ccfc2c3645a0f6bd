"""Crash-safe checkpoints: atomic writes, and a ``last.ckpt`` refreshed every N optimizer steps.

Why not Lightning's own write: ``TorchCheckpointIO`` saves through ``_atomic_save``
(``lightning/fabric/utilities/cloud_io.py``), an fsspec transaction. For a local path fsspec writes the
bytes to ``tempfile.mkstemp()`` in the *system* temp dir and then ``shutil.move``-s it over the target.
That is an atomic rename only while ``$TMPDIR`` and the checkpoint folder share a filesystem; across
filesystems (a tmpfs ``/tmp`` and a scratch disk, common on clusters) ``shutil.move`` falls back to
copying into the target itself, so a kill mid-copy truncates the previous ``last.ckpt``. Nothing is
fsync-ed either, so a power cut can leave an empty file behind a completed rename.
:class:`AtomicCheckpointIO` writes to a temporary file *beside* the target, fsyncs it, ``os.replace``-s it
(atomic on POSIX and Windows) and fsyncs the folder. Remote URLs (``s3://`` ...) keep Lightning's path.
"""

from __future__ import annotations

import errno
from typing import Any

import lightning as L
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from inpainting.errors import UserError
from inpainting.inference.checkpoint import atomic_torch_save


class CheckpointWriteError(UserError, OSError):
    """A checkpoint could not be written (disk full, read-only or vanished folder); the previous file is kept."""


#: write failures that are the machine's state, not a bug: reported in one line
_USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.EIO}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with a same-folder temp file + fsync + ``os.replace`` for local paths.

    Wired in ``conf/trainer/default.yaml`` as a Trainer plugin; loading is unchanged (``weights_only`` is
    honoured as in Lightning).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        try:
            atomic_torch_save(checkpoint, path)
        except OSError as error:
            if error.errno not in _USER_ERRNOS:
                raise
            raise CheckpointWriteError(
                f"cannot write checkpoint {path}: {error.strerror or error}; the previous one is kept. "
                "Free space or make the run dir writable, then resume from its checkpoints/last.ckpt",
            ) from error


class LastCheckpoint(ModelCheckpoint):
    """Writes only ``last.ckpt``: every ``every_n_train_steps`` optimizer steps and once more when fit ends.

    Independent of validation (the best-k ``ModelCheckpoint`` monitors a validation metric and so can only
    write when validation runs). Lightning's own ``on_train_end`` writes ``last`` only when nothing was saved
    yet, so a run whose ``max_steps`` is not a multiple of N would end with a stale ``last.ckpt``; this one
    also saves the final step. Resume from it with ``ckpt_path=.../checkpoints/last.ckpt``.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 100, **kwargs: Any) -> None:
        if every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be a positive integer, got {every_n_train_steps}")
        super().__init__(
            dirpath=dirpath,
            monitor=None,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=every_n_train_steps,
            **kwargs,
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
