"""Evaluation speed with the non-standard VGG extras on (the old default) and off (the new one), in one run.

    OMP_NUM_THREADS=1 python bench/bench_evaluate_speed.py

The same ``python -m inpainting.evaluate`` command twice on the embedded sample photos (``data=sample``, written
into a temporary folder; no download), Telea only, the same seeded masks: once with ``vgg_weights=default`` (the
VGG16 feature distance and VGG feature FID, on by default before issue 19) and once with the new default
``vgg_weights=null``. FID/LPIPS stay at ``auto`` with downloads off, so they run when their weights are already on
the machine (the section says whether they were). Times: the whole process (start-up, image loading, tables) and
the evaluation loop alone (the sum of the log's per-set "pairs in X s" lines). The standard columns must come out
identical in both runs (checked). The section "Evaluation speed" goes into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import markdown_table, run_logged, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LOOP = re.compile(r"telea on \S+: (\d+) pairs in ([\d.]+) s")
STANDARD = ("psnr", "ssim", "l1", "l1_hole", "lpips_alex", "lpips_vgg")


def evaluate(args: argparse.Namespace, out: Path, vgg: str) -> dict:
    """One evaluation in a fresh process; its wall time, loop time, pairs and 1-minute load averages."""
    command = [
        sys.executable, "-m", "inpainting.evaluate", "data=sample", f"paths.data_dir={args.out / 'data'}",
        f"data.image_size={args.image_size}", f"max_images={args.max_images}",
        f"masks_per_image={args.masks_per_image}", f"mask_sets=[{','.join(args.mask_sets)}]",
        "methods=[telea]", "download_weights=false", f"vgg_weights={vgg}", f"hydra.run.dir={out}",
    ]  # fmt: skip
    wall, load = run_logged(command, REPO, out.with_suffix(".log"))
    sets = LOOP.findall(out.with_suffix(".log").read_text())
    return {
        "wall": wall,
        "loop": sum(float(s) for _, s in sets),
        "pairs": sum(int(n) for n, _ in sets),
        "load": load,
        "summary": (out / "summary.md").read_text(),
        "rows": standard_rows(out / "results.csv"),
    }


def standard_rows(path: Path) -> list[tuple]:
    with open(path) as file:
        rows = list(csv.DictReader(file))
    return [tuple(r.get(k) for k in ("image", "mask_set", "mask_index", *STANDARD)) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-images", type=int, default=6)
    parser.add_argument("--masks-per-image", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--mask-sets", nargs="+", default=["thick", "area_30-40"])
    parser.add_argument("--load-note", default="", help="what else ran on the machine, for the section")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_evaluate_speed")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave the page alone")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    on = evaluate(args, args.out / "extras_on", "default")
    off = evaluate(args, args.out / "extras_off", "null")
    same = on["rows"] == off["rows"]
    pairs = off["pairs"]
    table = markdown_table(
        [
            {
                "evaluation (telea)": name,
                "wall time (s)": run["wall"],
                "loop (s)": run["loop"],
                "loop s / pair": run["loop"] / max(run["pairs"], 1),
                "wall vs extras off": run["wall"] / off["wall"],
                "loop vs extras off": run["loop"] / max(off["loop"], 1e-9),
            }
            for name, run in (
                ("before: VGG extras on (`vgg_weights=default`, the old default)", on),
                ("after: VGG extras off (`vgg_weights=null`, the new default)", off),
            )
        ]
    )
    standard = next(
        (line[2:] for line in off["summary"].splitlines() if line.startswith("- standard metric weights")),
        "FID/LPIPS weights were not on the machine (downloads off): the standard columns were PSNR, SSIM, L1 "
        "(LPIPS and FID, when their weights are there, stay on by default and cost their own)",
    )
    loads = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in (on["load"], off["load"]))
    loaded = f"**The machine was loaded**: {args.load_note} (" if args.load_note else "("
    per_pair = [run["loop"] / max(run["pairs"], 1) for run in (on, off)]
    body = (
        f"`python -m inpainting.evaluate data=sample methods=[telea]` on the first {args.max_images} embedded "
        f"sample photos ({args.image_size}², {args.masks_per_image} masks per photo and set, sets "
        f"{', '.join(args.mask_sets)}: {pairs} pairs), one process each, `OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}`; wall time includes start-up, image loading, the ground "
        "truth's VGG pass per set and the tables, loop is the sum of the log's per-set method times. "
        f"{standard}. {loaded}1-minute load average at start/end of each run: {loads}), so read the ratios rather "
        f"than the seconds.\n\n{table}\n\n"
        f"Standard columns identical with and without the extras: {'yes' if same else 'NO'}. With the extras on, "
        f"the non-standard VGG16 distance took {per_pair[0] - per_pair[1]:.2f} of {per_pair[0]:.2f} s per pair; "
        "off, Telea's pair costs what Telea and the standard metrics cost. The issue's own numbers on the idle "
        "machine (19 photos, four classical methods, every mask set, two masks each) were 11 minutes with the "
        "extras against 6 minutes for five methods without. `OMP_NUM_THREADS=1 python "
        "bench/bench_evaluate_speed.py` reruns it."
    )
    if not args.no_write:
        write_section(
            "evaluation_speed", "Evaluation speed: the non-standard VGG extras opt-in (issue 19)", body
        )
    print(body)


if __name__ == "__main__":
    main()
