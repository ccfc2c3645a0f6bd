"""Evaluation outputs: results.csv, summary.md, metrics_vs_area.png and sample grids."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure  # object API: no global backend switch (notebooks keep inline plots)

from inpainting.evaluation.metrics import AREA_LABELS, mean_ci

HIGHER_IS_BETTER = {
    "psnr": True,
    "ssim": True,
    "l1": False,
    "l1_hole": False,
    "lpips_alex": False,
    "lpips_vgg": False,
    "feature_distance": False,
}
TITLES = {
    "psnr": "PSNR (dB) ↑",
    "ssim": "SSIM ↑",
    "l1": "L1, whole image ↓",
    "l1_hole": "L1 inside the hole ↓",
    "lpips_alex": "LPIPS v0.1, AlexNet ↓",
    "lpips_vgg": "LPIPS v0.1, VGG16 ↓",
}
SHORT = {
    "fid": "FID ↓",
    "lpips_alex": "LPIPS-alex ↓",
    "lpips_vgg": "LPIPS-vgg ↓",
    "psnr": "PSNR ↑",
    "ssim": "SSIM ↑",
}
SHORT.update({"l1": "L1 ↓", "l1_hole": "L1 hole ↓"})
FID_TITLE = "FID (Inception-v3 pool features, 2015 TF weights) ↓"


def metric_columns(rows: Sequence[dict]) -> list[str]:
    return [m for m in HIGHER_IS_BETTER if m in rows[0]]


def write_csv(rows: Sequence[dict], path: Path) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _group(rows: Sequence[dict], key: str, metric: str) -> dict[tuple[str, str], list[float]]:
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], row[key])].append(row[metric])
    return groups


def _cell(values: list[float], digits: int) -> str:
    mean, half = mean_ci(values)
    ci = "" if np.isnan(half) else f" ± {half:.{digits}f}"
    return f"{mean:.{digits}f}{ci}"


def _table(rows: Sequence[dict], key: str, columns: Sequence[str], metric: str) -> list[str]:
    methods = list(dict.fromkeys(row["method"] for row in rows))
    groups = _group(rows, key, metric)
    digits = 2 if metric == "psnr" else 4
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method in methods:
        cells = [_cell(groups[(method, c)], digits) if groups.get((method, c)) else "-" for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def fid_table(rows: Sequence[dict], fid: dict[tuple[str, str], float]) -> list[str]:
    """Method x mask set (and all sets pooled) FID, with the sample count each cell was computed from."""
    sets = list(dict.fromkeys(row["mask_set"] for row in rows))
    columns = [*sets, "all"] if any(key[1] == "all" for key in fid) else sets
    counts = _group(rows, "mask_set", "psnr")
    methods = list(dict.fromkeys(row["method"] for row in rows))
    sizes = {s: len(counts[(methods[0], s)]) for s in sets} | {
        "all": sum(len(counts[(methods[0], s)]) for s in sets)
    }
    lines = [
        "| method | " + " | ".join(f"{c} (n={sizes[c]})" for c in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for method in methods:
        cells = [f"{fid[(method, c)]:.2f}" if (method, c) in fid else "-" for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def summary_markdown(
    rows: Sequence[dict],
    feature_label: str | None = None,
    fid: dict[str, float] | None = None,
    title: str = "",
    standard_fid: dict[tuple[str, str], float] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """Per metric: method x mask set and method x hole-area bucket tables of mean ± 95% CI; standard FID per set.

    ``notes`` are printed under the header (how networks were applied, where metric weights came from).
    """
    sets = list(dict.fromkeys(row["mask_set"] for row in rows))
    buckets = [b for b in AREA_LABELS if any(row["bucket"] == b for row in rows)]
    counts = _group(rows, "mask_set", "psnr")
    methods = list(dict.fromkeys(row["method"] for row in rows))
    lines = [f"# Evaluation{': ' + title if title else ''}", ""]
    lines.append(
        f"{len({r['image'] for r in rows})} images; pairs per method and mask set: "
        + ", ".join(f"{s} {len(counts[(methods[0], s)])}" for s in sets)
        + ". Cells: mean ± 95% confidence half-width (Student's t). Metrics on the uint8 composite in [0, 1]; "
        "buckets are the hole fraction of each mask, [lo, hi) (partial-convolution protocol)."
    )
    lines += ["", *[f"- {note}" for note in notes]] if notes else []
    if standard_fid:
        lines += ["", f"## {FID_TITLE}", ""]
        lines += [
            "Composites vs the ground-truth images of the same set; n = images per side. FID is biased upwards "
            "for small n, so compare cells with the same n only.",
            "",
        ]
        lines += fid_table(rows, standard_fid)
    for metric in metric_columns(rows):
        name = TITLES.get(metric, f"{feature_label} ↓" if metric == "feature_distance" else metric)
        lines += ["", f"## {name}", "", "By mask set:", ""]
        lines += _table(rows, "mask_set", sets, metric)
        lines += ["", "By hole-area bucket (all mask sets pooled):", ""]
        lines += _table(rows, "bucket", buckets, metric)
    if fid:
        label = (
            feature_label.replace("feature distance, not LPIPS", "relu5_3 features") if feature_label else ""
        )
        lines += ["", f"## FID on {label} — non-standard, not Inception FID ↓", ""]
        lines += ["| method | FID (all mask sets pooled) |", "|---|---|"]
        lines += [f"| {m} | {v:.2f} |" for m, v in fid.items()]
    return "\n".join(lines) + "\n"


def protocol_markdown(
    rows: Sequence[dict],
    fid: dict[tuple[str, str], float],
    name: str,
    metrics: Sequence[str],
    notes: Sequence[str] = (),
) -> str:
    """The paper's layout: one row per method, for each mask set the protocol's metrics side by side (means).

    Metrics whose weights are missing are left out and said so; intervals are in summary.md.
    """
    sets = list(dict.fromkeys(row["mask_set"] for row in rows))
    methods = list(dict.fromkeys(row["method"] for row in rows))
    present = [m for m in metrics if (m == "fid" and fid) or (m != "fid" and m in rows[0])]
    missing = [m for m in metrics if m not in present]
    header = "| method | " + " | ".join(f"{s} {SHORT.get(m, m)}" for s in sets for m in present) + " |"
    lines = [f"# Protocol: {name}", "", *[f"- {note}" for note in notes]]
    if missing:
        lines.append(f"- left out (weights missing, see README › Evaluate): {', '.join(missing)}")
    lines += ["- cells are means over all pairs of the set; 95% intervals per metric are in summary.md", ""]
    lines += [header, "|---" * (len(sets) * len(present) + 1) + "|"]
    for method in methods:
        cells = []
        for s in sets:
            for m in present:
                if m == "fid":
                    cells.append(f"{fid[(method, s)]:.2f}" if (method, s) in fid else "-")
                else:
                    values = [r[m] for r in rows if r["method"] == method and r["mask_set"] == s]
                    digits = 2 if m == "psnr" else 4
                    cells.append(f"{np.mean(values):.{digits}f}" if values else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_metrics_vs_area(rows: Sequence[dict], path: Path, feature_label: str | None = None) -> None:
    """One panel per metric: mean (± 95% CI) against hole-area bucket, one line per method."""
    metrics = metric_columns(rows)
    buckets = [b for b in AREA_LABELS if any(row["bucket"] == b for row in rows)]
    fig = Figure(figsize=(4.2 * len(metrics), 3.6))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        groups = _group(rows, "bucket", metric)
        for method in dict.fromkeys(row["method"] for row in rows):
            stats = [
                mean_ci(groups[(method, b)]) if groups.get((method, b)) else (np.nan, np.nan) for b in buckets
            ]
            means, halves = np.array(stats).T
            ax.errorbar(
                range(len(buckets)), means, yerr=np.nan_to_num(halves), marker="o", capsize=3, label=method
            )
        title = TITLES.get(metric, metric)
        if metric == "feature_distance":
            title = f"{feature_label} ↓" if feature_label else metric
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(buckets)), buckets, rotation=45)
        ax.set_xlabel("hole area (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def sample_grid(columns: dict[str, np.ndarray]) -> np.ndarray:
    """Rows = images, columns = input | methods... | ground truth, with a caption above each column (RGB)."""
    names = ["input", *[n for n in columns if n not in ("input", "ground truth")], "ground truth"]
    rows, height, width = columns["input"].shape[:3]
    header = np.full((22, width * len(names), 3), 255, np.uint8)
    for i, name in enumerate(names):
        cv2.putText(
            header, name[:28], (i * width + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
    body = np.concatenate([np.concatenate(list(columns[n]), axis=0) for n in names], axis=1)
    return np.concatenate([header, body], axis=0)


def write_grids(grids: dict[str, dict[str, np.ndarray]], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for set_name, columns in grids.items():
        path = folder / f"samples_{set_name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(sample_grid(columns), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths
