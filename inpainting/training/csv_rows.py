"""metrics.csv across a resume and across ddp_spawn's child processes: keep the rows, teach the writer the columns."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger


def keep_csv_rows(trainer: L.Trainer) -> None:
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


def reload_csv_columns(trainer: L.Trainer) -> None:
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
