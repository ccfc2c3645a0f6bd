"""``python -m inpainting.make_masks thick area_10-20 --count 1000 --size 256 --out masks/``

Exports named, seeded evaluation mask sets to PNG folders (white = missing) so other code and other
papers' evaluators can use exactly the masks this project evaluates on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inpainting.evaluation.mask_sets import MASK_SETS, export_mask_set


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "sets", nargs="+", choices=MASK_SETS, metavar="SET", help=f"one of: {', '.join(MASK_SETS)}"
    )
    parser.add_argument("--count", type=int, default=1000, help="masks per set (default 1000)")
    parser.add_argument("--size", type=int, nargs="+", default=[256], help="H [W] in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="mask seed (default 0, as inpainting.evaluate)")
    parser.add_argument(
        "--out", type=Path, default=Path("masks"), help="output folder; one subfolder per set"
    )
    args = parser.parse_args(argv)
    if len(args.size) > 2 or min(args.size) < 1 or args.count < 1:
        parser.error("--size takes one or two positive integers (H [W]); --count a positive integer")
    height, width = args.size[0], args.size[-1]
    folders = []
    for name in args.sets:
        folder = args.out / f"{name}_{height}x{width}_seed{args.seed}"
        export_mask_set(name, args.count, height, width, folder, seed=args.seed)
        print(f"{name}: {args.count} masks -> {folder}")
        folders.append(folder)
    return folders


if __name__ == "__main__":
    main()
