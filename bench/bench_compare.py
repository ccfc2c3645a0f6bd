"""Paired comparison of methods from one evaluation's results.csv, as a docs/benchmarks.md section.

Every method of one ``python -m inpainting.evaluate`` run is scored on the same images and the same seeded masks,
so two methods can be compared pair by pair: the tables give mean PSNR/SSIM per hole-area bucket, and for each
``A:B`` the mean paired difference A - B with its 95% interval (over pairs, and over images, which is the honest
interval when pairs of one photo are correlated). Used for issue 12's two questions:

    # sa_unet_lite against sa_unet at an equal training budget (the same recipe, seed and 1289 steps)
    python bench/bench_compare.py --results logs/kvgrid/eval256/results.csv --section lite_model \\
        --title "sa_unet_lite vs sa_unet at an equal training budget" --methods telea harmonic default sa_unet_lite \\
        --pairs sa_unet_lite:default sa_unet_lite:harmonic --note-file NOTE.md
    # the shipped weights with global keys capped at 16x16 (kv_grid) against the same weights uncapped
    python bench/bench_compare.py --results logs/kvgrid/eval512/results.csv --section kv_grid ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ablation import diff_table, means_table, read_results  # noqa: E402
from report import DEFAULT_PAGE, write_section  # noqa: E402


def comparison(rows: list[dict], methods: list[str], pairs: list[tuple[str, str]]) -> str:
    """Means per bucket for ``methods`` (PSNR, SSIM), then one paired-difference table per pair."""
    missing = sorted({m for m in methods + [m for p in pairs for m in p]} - {r["method"] for r in rows})
    if missing:
        raise SystemExit(f"not in the results: {missing}; it has {sorted({r['method'] for r in rows})}")
    buckets = sorted({r["bucket"] for r in rows})
    parts = [
        "PSNR (dB):",
        "",
        *means_table(rows, methods, "psnr"),
        "",
        "SSIM:",
        "",
        *means_table(rows, methods, "ssim"),
    ]
    for a, b in pairs:
        parts += ["", f"Paired difference `{a}` - `{b}` (mean ± 95% interval (pairs)):", ""]
        parts += diff_table(rows, a, {bucket: b for bucket in [*buckets, "all"]})
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, required=True, help="an evaluation's results.csv")
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--pairs", nargs="*", default=[], help="A:B, the difference A - B")
    parser.add_argument("--section", required=True)
    parser.add_argument("--title", required=True)
    parser.add_argument("--note-file", type=Path, default=None, help="markdown put before the tables")
    parser.add_argument("--output", type=Path, default=DEFAULT_PAGE)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    pairs = []
    for pair in args.pairs:
        a, sep, b = pair.partition(":")
        if not (sep and a and b):
            raise SystemExit(f"--pairs takes A:B (method names), got {pair!r}")
        pairs.append((a, b))
    body = comparison(read_results(args.results), args.methods, pairs)
    if args.note_file:
        body = args.note_file.read_text().strip() + "\n\n" + body
    print(body)
    if not args.no_write:
        write_section(args.section, args.title, body, args.output)


if __name__ == "__main__":
    main()
