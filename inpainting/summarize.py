"""``python -m inpainting.summarize DIR``: a sweep's training runs as one table and one plot.

DIR is a Hydra multirun dir (``logs/train/multiruns/<date>``) or any folder holding run dirs with a ``curve.csv``.
Writes ``DIR/summary.md`` (one row per run: its overrides, steps, CPU-seconds, best and final val PSNR, final
val SSIM; best final PSNR first, the PSNR-per-CPU-second frontier marked) and ``DIR/summary.png`` (every run's
val PSNR against CPU-seconds), and prints the table. Thin on purpose: the work is
:mod:`inpainting.training.sweep_summary`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from inpainting.cli.errors import is_user_error, user_error_message
from inpainting.training.sweep_summary import write_summary

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> str:
    """Parse the command line, write the summary, return its markdown."""
    parser = argparse.ArgumentParser(
        prog="python -m inpainting.summarize",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="a multirun dir or a folder of run dirs")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing summary.md / summary.png in DIR"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        md_path, png_path, text = write_summary(args.dir, overwrite=args.overwrite)
    except Exception as error:  # the train/predict policy (cli.errors), as argparse's one line: no Hydra here
        if not is_user_error(error):
            raise
        parser.exit(1, f"{parser.prog}: {user_error_message(error)}\n")
    print(text)
    log.info("wrote %s and %s", md_path, png_path)
    return text


if __name__ == "__main__":
    main()
