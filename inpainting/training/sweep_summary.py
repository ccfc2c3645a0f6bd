"""One table and one plot of a sweep's training runs (``python -m inpainting.summarize DIR``).

Every run dir under DIR that holds a ``curve.csv`` (:mod:`inpainting.training.curves`) is one job; its overrides
come from Hydra's ``.hydra/overrides.yaml`` beside it. The table ranks the jobs by final val PSNR and marks the
Pareto frontier of (CPU-seconds, final val PSNR): the jobs no other job beats with at most as much CPU time.
The plot draws every job's val PSNR against CPU-seconds, and the best PSNR any job had reached by each CPU-second.

``curve.csv``'s format (and ``curve.png``'s drawing) live here, not beside the callback that writes them
(:class:`inpainting.training.curves.LearningCurve`): reading a sweep needs no Lightning, which takes seconds to import.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from matplotlib.figure import Figure  # object API: no global backend switch; saved through Agg

from inpainting.data.predict_plan import OutputError
from inpainting.errors import ConfigError

SUMMARY_MD = "summary.md"
SUMMARY_PNG = "summary.png"
CURVE_CSV = "curve.csv"
CURVE_PNG = "curve.png"
COLUMNS = ("step", "wall_seconds", "cpu_seconds", "train_loss", "val_psnr", "val_ssim", "lr")


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def read_curve(path: Path) -> list[dict[str, float]]:
    """The rows of a ``curve.csv`` as floats (a blank or unreadable cell is NaN), in file order."""
    with open(path, newline="") as file:
        return [{key: _float(row.get(key)) for key in COLUMNS} for row in csv.DictReader(file)]


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    """Write ``rows`` as a whole new ``curve.csv`` (temp file, then rename: a crash leaves the old file whole)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(curve_cells(row) for row in rows)
    os.replace(tmp, path)


def curve_cells(row: dict[str, float]) -> dict[str, str]:
    """NaN as a blank cell, the step as an integer."""
    cells = {key: "" if math.isnan(row[key]) else f"{row[key]:.6g}" for key in COLUMNS}
    cells["step"] = str(int(row["step"]))
    cells["wall_seconds"] = f"{row['wall_seconds']:.1f}"
    cells["cpu_seconds"] = f"{row['cpu_seconds']:.1f}"
    return cells


def plot_curve(rows: list[dict[str, float]], path: Path, title: str = "") -> None:
    """``curve.png``: validation PSNR (left axis) and training loss (right axis) against the optimizer step."""
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    steps = [row["step"] for row in rows]
    ax.plot(steps, [row["val_psnr"] for row in rows], "o-", color="tab:blue", label="val PSNR")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("val PSNR (dB)", color="tab:blue")
    loss_ax = ax.twinx()
    loss_ax.plot(steps, [row["train_loss"] for row in rows], "s--", color="tab:orange", label="train loss")
    loss_ax.set_ylabel("train loss (last step before validation)", color="tab:orange")
    if rows:
        last = rows[-1]
        ax.set_title(
            title
            or f"step {int(last['step'])}, {last['cpu_seconds']:.0f} CPU-s, {last['wall_seconds']:.0f} s"
        )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)


@dataclass
class Job:
    """One run of the sweep: where it is, what it overrode, its curve's rows with a val PSNR."""

    name: str
    overrides: list[str]
    rows: list[dict[str, float]]
    frontier: bool = field(default=False)

    @property
    def last(self) -> dict[str, float]:
        return self.rows[-1] if self.rows else {}

    @property
    def final_psnr(self) -> float:
        return self.last.get("val_psnr", math.nan)

    @property
    def best_psnr(self) -> float:
        return max((row["val_psnr"] for row in self.rows), default=math.nan)

    @property
    def cpu_seconds(self) -> float:
        return self.last.get("cpu_seconds", math.nan)


def _natural(path: Path) -> list[object]:
    """Sort key putting Hydra's job 10 after job 9."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def read_overrides(run: Path) -> list[str]:
    """The job's command-line overrides as Hydra stored them; [] when the run has no ``.hydra`` folder."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    loaded = yaml.safe_load(path.read_text())
    return [str(item) for item in loaded] if isinstance(loaded, list) else []


def find_jobs(root: Path) -> list[Job]:
    """Every run dir under ``root`` (``root`` included) with a ``curve.csv``; a clear error when there is none."""
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise ConfigError(
            f"{root} {what}; give a Hydra multirun dir (logs/train/multiruns/<date>) or a run dir"
        )
    runs = sorted((csv.parent for csv in root.rglob(CURVE_CSV)), key=lambda p: _natural(p.relative_to(root)))
    if not runs:
        raise ConfigError(
            f"{root}: no training run with a {CURVE_CSV} in it or below it; give a Hydra multirun dir "
            "(logs/train/multiruns/<date>) whose jobs ran with callbacks.learning_curve (on by default)"
        )
    jobs = []
    for run in runs:
        rows = [
            row
            for row in read_curve(run / CURVE_CSV)
            if not (math.isnan(row["val_psnr"]) or math.isnan(row["cpu_seconds"]))
        ]
        jobs.append(Job(str(run.relative_to(root)) if run != root else root.name, read_overrides(run), rows))
    mark_frontier(jobs)
    return jobs


def mark_frontier(jobs: list[Job]) -> None:
    """A job is on the frontier when no other job reached a final val PSNR at least as high with at most as many
    CPU-seconds (and is better in one of the two)."""
    scored = [j for j in jobs if not (math.isnan(j.final_psnr) or math.isnan(j.cpu_seconds))]
    for job in jobs:
        job.frontier = job in scored and not any(
            other.cpu_seconds <= job.cpu_seconds
            and other.final_psnr >= job.final_psnr
            and (other.cpu_seconds < job.cpu_seconds or other.final_psnr > job.final_psnr)
            for other in scored
        )


def common_overrides(jobs: list[Job]) -> list[str]:
    """The overrides every job shares (the sweep's fixed settings), in the first job's order."""
    if not jobs:
        return []
    shared = set(jobs[0].overrides).intersection(*(j.overrides for j in jobs[1:]))
    return [o for o in jobs[0].overrides if o in shared]


def _own(job: Job, common: list[str]) -> str:
    return " ".join(o for o in job.overrides if o not in common) or "-"


def _num(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _md(text: str) -> str:
    return text.replace("|", r"\|")


def ranked(jobs: list[Job]) -> list[Job]:
    """Best final val PSNR first; jobs without a validation last."""
    return sorted(jobs, key=lambda j: (True, 0.0) if math.isnan(j.final_psnr) else (False, -j.final_psnr))


def summary_markdown(jobs: list[Job], root: Path) -> str:
    """The sweep's table: one row per job, best final val PSNR first, the frontier marked."""
    common = common_overrides(jobs)
    lines = [
        f"# Sweep summary: {root}",
        "",
        f"{len(jobs)} run(s). Common overrides: `{' '.join(common)}`" if common else f"{len(jobs)} run(s).",
        "CPU-s: process CPU time (every thread of the training process) at the last validation. "
        "Frontier ★: no other run reached at least its final val PSNR with no more CPU-seconds.",
        "",
        "| run | overrides | steps | CPU-s | best val PSNR | final val PSNR | final val SSIM | frontier |",
        "|---|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for job in ranked(jobs):
        last = job.last
        steps = "-" if not last else str(int(last["step"]))
        lines.append(
            f"| {_md(job.name)} | {_md(_own(job, common))} | {steps} | {_num(job.cpu_seconds, 0)} "
            f"| {_num(job.best_psnr, 2)} | {_num(job.final_psnr, 2)} | {_num(last.get('val_ssim', math.nan), 4)} "
            f"| {'★' if job.frontier else ''} |"
        )
    return "\n".join(lines) + "\n"


def plot_summary(jobs: list[Job], path: Path) -> None:
    """Every job's val PSNR against CPU-seconds, frontier jobs drawn solid, and the envelope: the best val PSNR
    any job had reached by each CPU-second."""
    common = common_overrides(jobs)
    fig = Figure(figsize=(9.0, 5.0))
    ax = fig.add_subplot()
    for job in ranked(jobs):
        if not job.rows:
            continue
        label = f"{job.name}: {_own(job, common)}"
        ax.plot(
            [r["cpu_seconds"] for r in job.rows],
            [r["val_psnr"] for r in job.rows],
            "o-" if job.frontier else ".--",
            linewidth=2.0 if job.frontier else 1.0,
            label=("★ " if job.frontier else "") + (label if len(label) < 70 else label[:67] + "..."),
        )
    points = sorted((r["cpu_seconds"], r["val_psnr"]) for job in jobs for r in job.rows)
    envelope_x, envelope_y, best = [], [], -math.inf
    for cpu, psnr in points:
        if psnr > best:
            best = psnr
            envelope_x.append(cpu)
            envelope_y.append(best)
    if envelope_x:
        envelope_x.append(points[-1][0])  # level to the last point of any run
        envelope_y.append(best)
        ax.step(envelope_x, envelope_y, where="post", color="black", alpha=0.4, label="best so far, any run")
    ax.set_xlabel("CPU-seconds (training process, all threads)")
    ax.set_ylabel("val PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_summary(root: Path, overwrite: bool = False) -> tuple[Path, Path, str]:
    """Write ``summary.md`` and ``summary.png`` into ``root``; return their paths and the markdown.

    An existing summary is replaced only with ``overwrite`` (checked for both files before either is written)."""
    jobs = find_jobs(root)
    md_path, png_path = root / SUMMARY_MD, root / SUMMARY_PNG
    existing = [p for p in (md_path, png_path) if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise OutputError(
            f"{existing[0]} already exists; pass --overwrite to replace {' and '.join(p.name for p in existing)}"
        )
    for path in existing:  # replaced, never written through (a link stays where it pointed)
        path.unlink()
    text = summary_markdown(jobs, root)
    md_path.write_text(text)
    plot_summary(jobs, png_path)
    return md_path, png_path, text
