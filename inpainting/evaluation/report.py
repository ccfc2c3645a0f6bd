"""Evaluation outputs: results.csv, summary.md, metrics_vs_area.png and sample grids."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure  # object API: no global backend switch (notebooks keep inline plots)

from inpainting.evaluation.metrics import (
    AREA_LABELS,
    FID_MIN_SAMPLES,
    MAX_PSNR,
    VGG_FID_MIN_SAMPLES,
    mean_ci,
)

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
    "warp_error": "warping error ↓",
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
#: what the VGG feature FID is called wherever it is printed, so it is never read as the standard FID
VGG_FID_LABEL = "FID (VGG, non-standard, not Inception FID)"
ALL_SETS = "all"  # the FID key of all mask sets pooled (as the evaluator's)
#: the metrics of the image summary's paired-difference tables
PAIRED_METRICS = ("psnr", "ssim")
#: what the image summary's PSNR cells and paired tables show, and which number is the headline
ROBUST_NOTE = (
    "PSNR cells: the mean of per-pair PSNR ± 95% half-width is the headline (comparable with earlier tables and "
    "papers); (pooled x) beside it is the PSNR of the MSE pooled over the cell's pairs, 10·log10(1 / mean MSE), "
    f"which a near-exact pair at the {MAX_PSNR:.0f} dB cap cannot lift (it reads {MAX_PSNR:.0f} only when every "
    "difference is invisible). Paired tables give the median difference beside the mean: one such pair cannot "
    "move it."
)


def floor_note(floor: int, option: str) -> str:
    """The line under a Fréchet-distance table whose blank cells fell below the sample floor."""
    return (
        f"n < {floor}: not reported (a Fréchet distance on fewer pairs is dominated by its small-sample bias; "
        f"{option}= sets the floor)"
    )


def fid_counts(rows: Sequence[dict]) -> dict[tuple[str, str] | str, int]:
    """Pairs behind each FID cell: ``(method, mask set)``, ``(method, "all")`` and, for the VGG FID, ``method``."""
    counts: dict[tuple[str, str] | str, int] = Counter((row["method"], row["mask_set"]) for row in rows)
    for method, n in Counter(row["method"] for row in rows).items():
        counts[(method, ALL_SETS)] = n
        counts[method] = n
    return counts


def reportable_fid(fid: dict, counts: dict, floor: int) -> tuple[dict, dict]:
    """``fid`` split into the values computed on at least ``floor`` pairs and, for the rest, their pair counts."""
    kept = {key: value for key, value in fid.items() if counts.get(key, 0) >= floor}
    return kept, {key: counts.get(key, 0) for key in fid if key not in kept}


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


def pooled_psnr(psnr: Sequence[float] | np.ndarray, max_psnr: float = MAX_PSNR) -> float:
    """PSNR of the mean squared error pooled over pairs: ``10 log10(1 / mean MSE)``, peak 1 as the per-pair PSNR.

    Each pair's MSE is recovered from its PSNR (``10^(-psnr/10)``: exact below the cap, so results.csv needs no
    new column); a pair at the cap counts as MSE ``10^(-max_psnr/10)``, at most what it is, which adds nothing
    visible beside pairs of ordinary error, whereas in a mean of PSNR it weighs ``max_psnr``. With every pair at
    the cap the result is the cap. NaN values are skipped; none left gives NaN.
    """
    values = np.asarray(psnr, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    mse = float(np.mean(10.0 ** (-np.minimum(values, max_psnr) / 10.0)))
    return float(min(max_psnr, -10.0 * np.log10(mse)))


def _cell(values: list[float], digits: int, pooled: bool = False) -> str:
    mean, half = mean_ci(values)
    ci = "" if np.isnan(half) else f" ± {half:.{digits}f}"
    extra = f" (pooled {pooled_psnr(values):.{digits}f})" if pooled else ""
    return f"{mean:.{digits}f}{ci}{extra}"


def _table(
    rows: Sequence[dict],
    key: str,
    columns: Sequence[str],
    metric: str,
    digits: int | None = None,
    pooled: bool = False,
) -> list[str]:
    """Method x ``columns`` (values of ``key``) of mean ± 95% half-width; ``pooled`` (PSNR only) adds, beside
    each mean, the PSNR of the pooled MSE (:func:`pooled_psnr`)."""
    methods = list(dict.fromkeys(row["method"] for row in rows))
    groups = _group(rows, key, metric)
    digits = digits if digits is not None else 2 if metric == "psnr" else 4
    pooled = pooled and metric == "psnr"
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method in methods:
        cells = [
            _cell(groups[(method, c)], digits, pooled) if groups.get((method, c)) else "-" for c in columns
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def paired_differences(
    rows: Sequence[dict], metric: str, first: str, second: str, keys: Sequence[str]
) -> np.ndarray:
    """``first - second`` per item (``keys``: e.g. image, mask set, mask index) both were scored on."""
    values: dict[str, dict[tuple, float]] = {first: {}, second: {}}
    for row in rows:
        if row["method"] in values and not np.isnan(row[metric]):
            values[row["method"]][tuple(row[k] for k in keys)] = row[metric]
    return np.array(
        [values[first][k] - values[second][k] for k in values[first] if k in values[second]], np.float64
    )


def paired_difference(
    rows: Sequence[dict], metric: str, first: str, second: str, keys: Sequence[str]
) -> tuple[float, float, int]:
    """Mean of ``first - second`` over the items (``keys``: e.g. image, mask set, mask index) both were scored on,
    its 95% half-width (:func:`mean_ci`, Student's t: the pairing removes the items' own spread) and the count."""
    differences = paired_differences(rows, metric, first, second, keys)
    if not differences.size:
        return float("nan"), float("nan"), 0
    mean, half = mean_ci(differences)
    return mean, half, len(differences)


def paired_table(
    rows: Sequence[dict],
    comparisons: Sequence[tuple[str, str]],
    metrics: Sequence[str],
    keys: Sequence[str],
    digits: dict[str, int] | None = None,
    median: bool = False,
    label: str | None = None,
) -> list[str]:
    """Markdown: one line per ``(first, second)`` comparison, per metric the mean paired difference ± 95% half-width.

    ``median`` adds, beside each mean, the median of the same paired differences (one extreme pair, such as a
    near-exact one at the PSNR cap, moves the mean but not the median); ``label`` puts a first column (a bucket).
    """
    digits = digits or {}
    lead = "| " if label is None else "| bucket | "
    header = " | ".join(
        f"Δ {TITLES.get(m, m)}" + (f" | median Δ {SHORT.get(m, m)}" if median else "") for m in metrics
    )
    width = len(metrics) * (2 if median else 1) + 2 + (label is not None)
    lines = [f"{lead}first − second | {header} | n |", "|---" * width + "|"]
    lead = "| " if label is None else f"| {label} | "
    for first, second in comparisons:
        cells, count = [], 0
        for metric in metrics:
            differences = paired_differences(rows, metric, first, second, keys)
            count = len(differences)
            places = digits.get(metric, 2 if metric == "psnr" else 4)
            if count == 0:
                cells += ["-", "-"] if median else ["-"]
                continue
            mean, half = mean_ci(differences)
            ci = "" if np.isnan(half) else f" ± {half:.{places}f}"
            cells.append(f"{round(mean, places) + 0.0:+.{places}f}{ci}")  # + 0.0: no "-0.00"
            if median:
                cells.append(f"{round(float(np.median(differences)), places) + 0.0:+.{places}f}")
        lines.append(f"{lead}{first} − {second} | " + " | ".join(cells) + f" | {count} |")
    return lines


def image_comparisons(rows: Sequence[dict]) -> list[tuple[str, str]]:
    """Each method against the one with the highest mean PSNR over all pairs (the video summary's rule)."""
    methods = list(dict.fromkeys(row["method"] for row in rows))
    if len(methods) < 2:
        return []
    means = {m: np.nanmean([r["psnr"] for r in rows if r["method"] == m]) for m in methods}
    best = max(methods, key=lambda m: means[m])
    return [(m, best) for m in methods if m != best]


def paired_bucket_tables(rows: Sequence[dict], keys: Sequence[str]) -> list[str]:
    """Paired differences per hole-area bucket and over all pairs: mean ± 95% half-width and median."""
    comparisons = image_comparisons(rows)
    if not comparisons:
        return []
    buckets = [b for b in AREA_LABELS if any(row["bucket"] == b for row in rows)]
    lines = [
        "",
        "## Paired differences (same images and masks)",
        "",
        "first − second over the pairs both were scored on, second = the highest mean PSNR; mean ± 95% half-width "
        "(Student's t on the paired differences; the headline) and the median difference. Positive Δ PSNR / SSIM "
        "favours the first. 'all' pools every pair (pairs of one photo are correlated: its interval is optimistic).",
        "",
    ]
    for index, bucket in enumerate([*buckets, "all"]):
        subset = rows if bucket == "all" else [r for r in rows if r["bucket"] == bucket]
        table = paired_table(subset, comparisons, PAIRED_METRICS, keys, median=True, label=bucket)
        lines += table if index == 0 else table[2:]
    return lines


def fid_table(
    rows: Sequence[dict], fid: dict[tuple[str, str], float], min_samples: int = FID_MIN_SAMPLES
) -> list[str]:
    """Method x mask set (and all sets pooled) FID, with the sample count each cell was computed from.

    A cell on fewer than ``min_samples`` pairs is blank, with :func:`floor_note` under the table.
    """
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
    kept, withheld = reportable_fid(fid, fid_counts(rows), min_samples)
    for method in methods:
        cells = [
            f"{kept[(method, c)]:.2f}" if (method, c) in kept else "" if (method, c) in withheld else "-"
            for c in columns
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + (["", "Blank cells: " + floor_note(min_samples, "fid_min_samples")] if withheld else [])


def summary_markdown(
    rows: Sequence[dict],
    feature_label: str | None = None,
    fid: dict[str, float] | None = None,
    title: str = "",
    standard_fid: dict[tuple[str, str], float] | None = None,
    notes: Sequence[str] = (),
    fid_min_samples: int = FID_MIN_SAMPLES,
    vgg_fid_min_samples: int = VGG_FID_MIN_SAMPLES,
) -> str:
    """Per metric: method x mask set and method x hole-area bucket tables of mean ± 95% CI; standard FID per set;
    paired differences against the best method per bucket.

    ``notes`` are printed under the header (how networks were applied, where metric weights came from). A
    Fréchet distance (``standard_fid``, or the VGG variant ``fid``) on fewer pairs than its floor is left blank.

    The headline stays the mean of per-pair PSNR (and the mean paired difference): it is what earlier tables in
    docs/benchmarks.md and the papers' protocols report, and its interval is the one printed. Because one
    near-exact pair at the 100 dB cap can move a bucket's mean by most of a dB, each PSNR cell also shows the PSNR
    of the pooled MSE and each paired comparison its median difference (:data:`ROBUST_NOTE`): when they disagree
    with the mean, the mean is being carried by a few pairs.
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
        "buckets are the hole fraction of each mask, [lo, hi) (partial-convolution protocol). " + ROBUST_NOTE
    )
    lines += ["", *[f"- {note}" for note in notes]] if notes else []
    if standard_fid:
        lines += ["", f"## {FID_TITLE}", ""]
        lines += [
            "Composites vs the ground-truth images of the same set; n = images per side. FID is biased upwards "
            "for small n, so compare cells with the same n only.",
            "",
        ]
        lines += fid_table(rows, standard_fid, fid_min_samples)
    for metric in metric_columns(rows):
        name = TITLES.get(metric, f"{feature_label} ↓" if metric == "feature_distance" else metric)
        lines += ["", f"## {name}", "", "By mask set:", ""]
        lines += _table(rows, "mask_set", sets, metric, pooled=True)
        lines += ["", "By hole-area bucket (all mask sets pooled):", ""]
        lines += _table(rows, "bucket", buckets, metric, pooled=True)
    lines += paired_bucket_tables(rows, ("image", "mask_set", "mask_index"))
    if fid:
        label = (
            feature_label.replace("feature distance, not LPIPS", "relu5_3 features") if feature_label else ""
        )
        counts = fid_counts(rows)
        kept, withheld = reportable_fid(fid, counts, vgg_fid_min_samples)
        n = counts.get(next(iter(fid)), 0)
        lines += ["", f"## FID (VGG, non-standard) on {label} ↓", ""]
        lines += [f"| method | {VGG_FID_LABEL}, all mask sets pooled (n={n}) |", "|---|---|"]
        lines += [f"| {m} | {f'{kept[m]:.2f}' if m in kept else ''} |" for m in fid]
        lines += (
            ["", "Blank cells: " + floor_note(vgg_fid_min_samples, "vgg_fid_min_samples")] if withheld else []
        )
    return "\n".join(lines) + "\n"


def protocol_markdown(
    rows: Sequence[dict],
    fid: dict[tuple[str, str], float],
    name: str,
    metrics: Sequence[str],
    notes: Sequence[str] = (),
    fid_min_samples: int = FID_MIN_SAMPLES,
) -> str:
    """The paper's layout: one row per method, for each mask set the protocol's metrics side by side (means).

    Metrics whose weights are missing are left out and said so; FID cells on fewer than ``fid_min_samples`` pairs
    are blank and said so; intervals are in summary.md.
    """
    sets = list(dict.fromkeys(row["mask_set"] for row in rows))
    methods = list(dict.fromkeys(row["method"] for row in rows))
    present = [m for m in metrics if (m == "fid" and fid) or (m != "fid" and m in rows[0])]
    missing = [m for m in metrics if m not in present]
    header = "| method | " + " | ".join(f"{s} {SHORT.get(m, m)}" for s in sets for m in present) + " |"
    lines = [f"# Protocol: {name}", "", *[f"- {note}" for note in notes]]
    if missing:
        lines.append(f"- left out (weights missing, see README › Evaluate): {', '.join(missing)}")
    kept, withheld = reportable_fid(fid, fid_counts(rows), fid_min_samples)
    if withheld and "fid" in present:
        lines.append("- blank FID cells: " + floor_note(fid_min_samples, "fid_min_samples"))
    lines += ["- cells are means over all pairs of the set; 95% intervals per metric are in summary.md", ""]
    lines += [header, "|---" * (len(sets) * len(present) + 1) + "|"]
    for method in methods:
        cells = []
        for s in sets:
            for m in present:
                if m == "fid":
                    cells.append(
                        f"{kept[(method, s)]:.2f}"
                        if (method, s) in kept
                        else ""
                        if (method, s) in withheld
                        else "-"
                    )
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
