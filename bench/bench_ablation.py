"""Does self-attention help? sa_unet vs unet trained side by side at an equal wall-clock budget, then evaluated.

Reads what the two training runs and one evaluation wrote, and writes two docs/benchmarks.md sections:

* ``attention_ablation``: paired per-bucket differences sa_unet - unet (PSNR, SSIM) with 95% intervals, the
  attention gates' magnitudes over training, the validation curve of both runs and the steps each reached;
* ``default_model``: the better network (the shipped one) paired against the best classical method per bucket.

    # the two runs, side by side, one thread each, same wall-clock cap (see conf/experiment/default_model.yaml)
    python -m inpainting.train experiment=default_model model=sa_unet data.root=DATA +trainer.max_time=00:01:40:00 \
        hydra.run.dir=logs/ablation/sa_unet
    python -m inpainting.train experiment=default_model model=unet trainer.max_steps=3500 data.root=DATA \
        +trainer.max_time=00:01:40:00 hydra.run.dir=logs/ablation/unet
    # evaluation on the test split at 256², every mask set, then this script
    python bench/bench_ablation.py --runs logs/ablation --eval logs/ablation/eval --data-root DATA
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, write_section  # noqa: E402

from inpainting.evaluation.metrics import mean_ci  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLASSICAL = ("telea", "navier_stokes", "biharmonic", "patchmatch", "harmonic")
RUNS = ("sa_unet", "unet")


def read_results(path: Path) -> list[dict]:
    with open(path) as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        for key in ("psnr", "ssim", "l1", "l1_hole"):
            if key in row and row[key] != "":
                row[key] = float(row[key])
    return rows


def pairs(rows: list[dict], a: str, b: str, metric: str) -> dict[str, list[tuple[str, float]]]:
    """bucket -> [(image, a - b)] over the image x mask pairs both methods were run on."""
    by_key = {
        (r["method"], r["image"], r["mask_set"], r.get("mask_index", r.get("mask", ""))): r for r in rows
    }
    out: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (method, image, mask_set, index), row in by_key.items():
        if method != a or (b, image, mask_set, index) not in by_key:
            continue
        out[row["bucket"]].append((image, row[metric] - by_key[(b, image, mask_set, index)][metric]))
        out["all"].append((image, row[metric] - by_key[(b, image, mask_set, index)][metric]))
    return out


def cell(diffs: list[tuple[str, float]], digits: int) -> str:
    mean, half = mean_ci([d for _, d in diffs])
    return f"{mean:+.{digits}f} ± {half:.{digits}f} ({len(diffs)})"


def image_clustered(diffs: list[tuple[str, float]], digits: int) -> str:
    """Mean over images of each image's mean difference, with the interval over images (pairs of one photo are
    correlated, so this interval is the honest one for 'all')."""
    per_image: dict[str, list[float]] = defaultdict(list)
    for image, d in diffs:
        per_image[image].append(d)
    mean, half = mean_ci([float(np.mean(v)) for v in per_image.values()])
    return f"{mean:+.{digits}f} ± {half:.{digits}f} ({len(per_image)} images)"


def diff_table(rows: list[dict], a: str, b_for_bucket: dict[str, str]) -> list[str]:
    buckets = sorted({r["bucket"] for r in rows})
    lines = ["| bucket | vs | PSNR diff (dB) | SSIM diff |", "|---|---|---|---|"]
    for bucket in [*buckets, "all"]:
        b = b_for_bucket[bucket]
        psnr, ssim = pairs(rows, a, b, "psnr")[bucket], pairs(rows, a, b, "ssim")[bucket]
        if not psnr:
            continue
        lines.append(f"| {bucket} | {b} | {cell(psnr, 2)} | {cell(ssim, 4)} |")
    psnr_all, ssim_all = (
        pairs(rows, a, b_for_bucket["all"], "psnr")["all"],
        pairs(rows, a, b_for_bucket["all"], "ssim")["all"],
    )
    lines.append(
        f"| all, per image | {b_for_bucket['all']} | {image_clustered(psnr_all, 2)} | {image_clustered(ssim_all, 4)} |"
    )
    return lines


def means_table(rows: list[dict], methods: list[str], metric: str) -> list[str]:
    buckets = sorted({r["bucket"] for r in rows})
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["bucket"])].append(r[metric])
        groups[(r["method"], "all")].append(r[metric])
    digits = 2 if metric == "psnr" else 4
    lines = ["| method | " + " | ".join([*buckets, "all"]) + " |", "|---" * (len(buckets) + 2) + "|"]
    for m in methods:
        cells = [
            f"{np.mean(groups[(m, b)]):.{digits}f}" if groups[(m, b)] else "-" for b in [*buckets, "all"]
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def best_classical(rows: list[dict]) -> dict[str, str]:
    """Per bucket (and 'all'), the classical method with the highest mean PSNR."""
    means: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["method"] in CLASSICAL:
            means[r["bucket"]][r["method"]].append(r["psnr"])
            means["all"][r["method"]].append(r["psnr"])
    return {bucket: max(m, key=lambda k: np.mean(m[k])) for bucket, m in means.items()}


def training_curves(run_dir: Path) -> tuple[list[tuple[int, float]], list[tuple[int, dict[str, float]]], int]:
    """Validation PSNR by step, the attention gates by step, and the last step reached."""
    metrics = next(run_dir.rglob("metrics.csv"))
    with open(metrics) as file:
        rows = list(csv.DictReader(file))
    val = [(int(r["step"]), float(r["val/psnr"])) for r in rows if r.get("val/psnr")]
    gates = [
        (
            int(r["step"]),
            {k.split("gate_")[1]: float(v) for k, v in r.items() if k.startswith("attention/gate") and v},
        )
        for r in rows
        if any(k.startswith("attention/gate") and v for k, v in r.items())
    ]
    last = max(int(r["step"]) for r in rows if r.get("step"))
    return val, gates, last


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=REPO / "logs" / "ablation")
    parser.add_argument("--eval", type=Path, default=None, help="evaluation folder (default: RUNS/eval)")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--evaluate", action="store_true", help="run the evaluation first")
    parser.add_argument("--masks-per-image", type=int, default=4)
    parser.add_argument("--budget", default="100 min", help="the wall-clock cap each run had (for the text)")
    parser.add_argument("--extra", nargs="*", default=[], help="more methods to evaluate, e.g. old@ckpt:PATH")
    parser.add_argument(
        "--early",
        type=Path,
        default=None,
        help="an evaluation folder of earlier checkpoints, methods named <run>_step<N>: the test-metric trend",
    )
    args = parser.parse_args()
    eval_dir = args.eval or args.runs / "eval"
    if args.evaluate:
        methods = [
            *CLASSICAL,
            *(f"{n}@ckpt:{args.runs / n / 'checkpoints' / 'last.ckpt'}" for n in RUNS),
            *args.extra,
        ]
        command = [
            sys.executable, "-m", "inpainting.evaluate", "data=folder", f"data.root={args.data_root}",
            "data.test_fraction=0.25", "data.val_fraction=0.1", "data.image_size=256", "split=test",
            f"masks_per_image={args.masks_per_image}", f"methods=[{','.join(methods)}]", f"hydra.run.dir={eval_dir}",
            "vgg_weights=null",  # the non-standard VGG distance costs ~1.4 s per pair and is not needed here
        ]  # fmt: skip
        print(" ".join(command), flush=True)
        subprocess.run(command, cwd=REPO, check=True)
    rows = read_results(eval_dir / "results.csv")
    curves = {name: training_curves(args.runs / name) for name in RUNS}
    buckets = sorted({r["bucket"] for r in rows})

    ablation = diff_table(rows, "sa_unet", {b: "unet" for b in [*buckets, "all"]})
    gate_lines = [
        "| step | " + " | ".join(curves["sa_unet"][1][0][1]) + " |",
        "|---" * (len(curves["sa_unet"][1][0][1]) + 1) + "|",
    ]
    gate_rows = curves["sa_unet"][1]
    picked = gate_rows[:: max(1, len(gate_rows) // 8)]
    for step, gates in picked + ([gate_rows[-1]] if picked[-1] != gate_rows[-1] else []):
        gate_lines.append(f"| {step} | " + " | ".join(f"{v:.3f}" for v in gates.values()) + " |")
    val_lines = ["| run | steps reached | val PSNR by step (every ~400) |", "|---|---|---|"]
    for name in RUNS:
        val, _, last = curves[name]
        trend = ", ".join(f"{s}: {p:.2f}" for s, p in val[1::2])
        val_lines.append(f"| {name} | {last} | {trend} |")
    common = (
        f"Both runs: `experiment=default_model` (multi-scale 128² crops, batch 8, Adam 5e-4 cosine, L1 hole 6 / valid "
        f"1 + TV), the train split of `{args.data_root}`, side by side, one thread each, the same "
        f"wall-clock cap ({args.budget}); {machine()}. Evaluation: the {len({r['image'] for r in rows})} test photos at 256², every mask set, "
        f"{args.masks_per_image} masks per photo per set (`{eval_dir.name}/results.csv`). Cells: mean paired "
        "difference ± 95% interval (pairs); the last row averages per photo first (pairs of one photo are "
        "correlated)."
    )
    trend_lines: list[str] = []
    if args.early is not None:
        early = read_results(args.early / "results.csv")
        start = float(np.mean([r["psnr"] for r in rows if r["method"] == "harmonic"]))
        trend_lines = [
            "",
            "Test PSNR (all pairs) against training: step 0 is the harmonic fill, which an untrained net returns "
            "exactly; the middle points are the runs' best validation checkpoints.",
            "",
            "| run | step 0 | earlier checkpoint | last |",
            "|---|---|---|---|",
        ]
        for name in RUNS:
            points = sorted(
                (int(m.rsplit("_step", 1)[1]), float(np.mean([r["psnr"] for r in early if r["method"] == m])))
                for m in {r["method"] for r in early}
                if m.startswith(f"{name}_step")
            )
            final = float(np.mean([r["psnr"] for r in rows if r["method"] == name]))
            middle = ", ".join(f"step {s}: {p:.2f}" for s, p in points) or "-"
            trend_lines.append(f"| {name} | {start:.2f} | {middle} | step {curves[name][2]}: {final:.2f} |")
    write_section(
        "attention_ablation",
        "Does self-attention help? sa_unet vs unet at an equal wall-clock budget",
        common
        + "\n\nsa_unet − unet, paired:\n\n"
        + "\n".join(ablation)
        + "\n\nTraining (validation PSNR on the validation photos at 128²):\n\n"
        + "\n".join(val_lines)
        + "\n".join(trend_lines)
        + "\n\n|gamma| of sa_unet's attention gates over training (initialised at 1):\n\n"
        + "\n".join(gate_lines),
    )
    means = {name: np.mean([r["psnr"] for r in rows if r["method"] == name]) for name in RUNS}
    shipped = max(means, key=means.get)
    best = best_classical(rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    write_section(
        "default_model",
        f"The default model ({shipped}): held-out evaluation against the classical methods",
        common
        + f"\n\nShipped: `{shipped}` (the better of the two by mean test PSNR). Paired against the classical method "
        "with the best mean PSNR in each bucket:\n\n"
        + "\n".join(diff_table(rows, shipped, best))
        + (
            "\n\nPaired against the previous default model (the first one shipped; GroupNorm, plain push-pull "
            "prior, 2400 steps at one 128² scale):\n\n"
            + "\n".join(diff_table(rows, shipped, {b: "previous_default" for b in [*buckets, "all"]}))
            if any(r["method"] == "previous_default" for r in rows)
            else ""
        )
        + "\n\nMean PSNR (dB) by hole-area bucket:\n\n"
        + "\n".join(means_table(rows, methods, "psnr"))
        + "\n\nMean SSIM by hole-area bucket:\n\n"
        + "\n".join(means_table(rows, methods, "ssim")),
    )
    print(f"sections written; shipped candidate: {shipped} (mean PSNR {means})")


if __name__ == "__main__":
    main()
