"""Evaluator speed, before and after: the same command on the same photos, masks and methods, one run each.

    python bench/bench_evaluate.py --data-root ../shared/data/photos --before 78d0bc0~1

``--before`` is a git revision; its tree is exported with ``git archive`` into a temporary folder (the working
tree is not touched) and run as ``python -m inpainting.evaluate`` from there. Both runs evaluate the first
``--max-images`` photos (shrunk once to a 512-px short side, centre-cropped to ``--image-size``), the same seeded
mask sets and the same methods; the network is named by its file (``sa_unet@ckpt:...``) so both versions accept
it. Baseline rows must come out identical (checked); network rows differ by design (the old evaluator ran the
network on the whole image, the new one on predict's crop path). The section goes into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import downscaled_copy  # noqa: E402
from report import markdown_table, run_logged, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NETWORK = "sa_unet@ckpt:" + str(REPO / "inpainting" / "weights" / "sa_unet_default.pt")
BASELINES = ("telea", "navier_stokes", "biharmonic", "patchmatch")
LOADS: list[tuple[float, float]] = []  # 1-minute load average at the start and end of each run
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def evaluate(source: Path, photos: Path, args: argparse.Namespace, out: Path, extra: list[str]) -> float:
    """Run one evaluation from the tree at ``source``; return its wall-clock seconds."""
    command = [
        sys.executable, "-m", "inpainting.evaluate", "data=folder", f"data.root={photos}",
        f"data.image_size={args.image_size}", f"max_images={args.max_images}",
        f"masks_per_image={args.masks_per_image}", f"mask_sets=[{','.join(args.mask_sets)}]",
        f"methods=[{','.join([*BASELINES, NETWORK])}]", f"hydra.run.dir={out}", *extra,
    ]  # fmt: skip
    seconds, loads = run_logged(command, source, out.with_suffix(".log"))
    LOADS.append(loads)
    return seconds


def baseline_rows(run_dir: Path) -> list[tuple]:
    with open(run_dir / "results.csv") as file:
        rows = [r for r in csv.DictReader(file) if r["method"] in BASELINES]
    return sorted(
        (r["image"], r["mask_set"], r["mask_index"], r["method"], r["psnr"], r["ssim"]) for r in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--before", required=True, help="git revision of the old evaluator")
    parser.add_argument("--max-images", type=int, default=6)
    parser.add_argument("--masks-per-image", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--mask-sets", nargs="+", default=["thick", "area_30-40"])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_evaluate")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    photos = downscaled_copy(args.data_root, args.out / "photos", 512)
    old_tree = args.out / "before"
    if not old_tree.is_dir():
        old_tree.mkdir()
        archive = subprocess.run(["git", "archive", args.before], cwd=REPO, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
    before = evaluate(old_tree, photos, args, args.out / "run_before", ["vgg_weights=default"])
    after = evaluate(REPO, photos, args, args.out / "run_after", ["vgg_weights=default"])
    same = baseline_rows(args.out / "run_before") == baseline_rows(args.out / "run_after")
    progress = [
        ANSI.sub("", line.split(" - ", 1)[1]).strip()
        for line in (args.out / "run_after.log").read_text().splitlines()
        if "pairs in" in line or "worker processes" in line
    ]
    pairs = args.max_images * args.masks_per_image * len(args.mask_sets)
    table = markdown_table(
        [
            {"evaluator": f"before (`{args.before}`)", "wall time (s)": before, "speed-up": 1.0},
            {"evaluator": "after", "wall time (s)": after, "speed-up": before / after},
        ]
    )
    body = (
        f"`python -m inpainting.evaluate` on the first {args.max_images} photos of `{args.data_root}` "
        f"({args.image_size}², {args.masks_per_image} masks per photo and set, sets {', '.join(args.mask_sets)}: "
        f"{pairs} pairs per method), methods {', '.join(BASELINES)} and the shipped sa_unet, non-standard VGG16 "
        "distance on, one run each, whole process (start-up, image loading, plots) included. 1-minute load "
        f"average at start/end of the runs: {', '.join(f'{a:.1f}/{b:.1f}' for a, b in LOADS)} (other jobs shared "
        "the cores).\n\n"
        f"{table}\n\nBaseline rows identical before/after: {'yes' if same else 'NO'}. The network's rows differ "
        "by design: before, it ran on the whole image; after, on predict's crop path (the number predict's "
        "output would get). After-run progress lines:\n\n" + "\n".join(f"    {line}" for line in progress)
    )
    write_section("evaluate_speed", "Evaluator speed: before and after (issue 11)", body)
    print(body)


if __name__ == "__main__":
    main()
