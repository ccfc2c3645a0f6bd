"""``python -m inpainting.export [ckpt_path=...] format=generator|torchscript|onnx output=...``.

Turns a training checkpoint (or a generator file; without ``ckpt_path`` the shipped model, as predict uses) into
a ``generator`` file, a TorchScript or an ONNX file, checked against eager PyTorch before it is written. The
exporters are :mod:`inpainting.inference.export`; this module composes the config, calls
:func:`inpainting.inference.export.export` and reports.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from inpainting.cli.errors import exit_on_user_error
from inpainting.cli.header import print_run_header
from inpainting.cli.hints import exit_on_unknown_key
from inpainting.inference.checkpoint import resolve_weights
from inpainting.inference.export import SUFFIXES, export
from inpainting.resources import conf_dir

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="export")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        print_run_header(cfg)
        source = resolve_weights(cfg.get("ckpt_path"))
        output = cfg.get("output")
        if not cfg.get("ckpt_path"):
            # written to the run dir, never into the installed package beside the shipped file
            output = output or Path(cfg.paths.output_dir) / (source.stem + SUFFIXES.get(cfg.format, ""))
            log.info(
                "no ckpt_path given: exporting the shipped model %s (ckpt_path=... exports another)", source
            )
        export(source, cfg.format, output, temporal_prior=cfg.get("temporal_prior"))


if __name__ == "__main__":
    exit_on_unknown_key("export")
    main()
