"""``python -m inpainting.evaluate``: every method, the same images and masks, one table.

Thin Hydra entry point: composes ``conf/evaluate.yaml`` and calls :func:`inpainting.evaluation.runner.run`
(images from a data config's split or user pairs, the named mask sets, :mod:`inpainting.evaluation.evaluator`,
:mod:`inpainting.evaluation.report` outputs; a video data config goes to
:mod:`inpainting.evaluation.video_evaluator`). ``protocol=lama`` (conf/protocol/) presets a paper's mask sets
and adds ``protocol.md`` in its table layout.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from inpainting.cli.errors import exit_on_user_error
from inpainting.cli.header import print_run_header
from inpainting.cli.hints import exit_on_unknown_key
from inpainting.evaluation.runner import run
from inpainting.resources import conf_dir


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    print_run_header(cfg)
    with exit_on_user_error():
        run(cfg)


if __name__ == "__main__":
    exit_on_unknown_key("evaluate")
    main()
