"""``python -m inpainting.predict input=photo.jpg mask=photo_mask.png output=out.png`` (or whole folders).

The config key is ``mask_path`` (``mask`` is the name of a Hydra config group in ``conf/``, so Hydra would read
``mask=...`` as a group choice); on the command line ``mask=...`` is accepted as an alias of ``mask_path=...``.

Thin Hydra entry point: composes ``conf/predict.yaml`` and calls :func:`inpainting.inference.predict_runner.run`,
which plans the (image, mask) -> output jobs (:mod:`inpainting.data.predict_plan`: ``<name>_mask*.png`` beside
each image, or the file of the same name in a mirrored ``mask_path=FOLDER``; every output checked against the
inputs, the other outputs and existing files before anything is written, ``overwrite=true`` for a previous run's
outputs), loads the model and runs :class:`inpainting.inference.Inpainter` on each pair with a progress bar.
Masks: white = missing (``threshold``, ``invert``). A file that cannot be read (or has no mask, or a mask of
another size) is reported and skipped; the rest is processed, and the command exits with status 1 at the end.
A video file or a folder of frames (``video=auto|true|false``) goes to :mod:`inpainting.inference.video`.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from inpainting.cli.errors import exit_on_user_error
from inpainting.cli.header import print_run_header
from inpainting.cli.hints import exit_on_unknown_key
from inpainting.inference.predict_runner import run
from inpainting.resources import conf_dir


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="predict")
def main(cfg: DictConfig) -> None:
    print_run_header(cfg)
    with exit_on_user_error():
        result = run(cfg)
    if result.failed:
        sys.exit(1)


def alias_mask_argument(argv: list[str]) -> list[str]:
    """``mask=X`` -> ``mask_path=X``: the issue's spelling, which Hydra would take for the ``mask`` config group."""
    return [f"mask_path={arg[5:]}" if arg.startswith("mask=") else arg for arg in argv]


if __name__ == "__main__":
    sys.argv = alias_mask_argument(sys.argv)
    exit_on_unknown_key("predict")
    main()
