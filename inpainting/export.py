"""``python -m inpainting.export ckpt_path=... format=generator|torchscript|onnx output=...``.

Turns a training checkpoint (or a generator file) into a ``generator`` file, a TorchScript or an ONNX file,
checked against eager PyTorch before it is written. The exporters are :mod:`inpainting.inference.export`; this
module composes the config, calls :func:`inpainting.inference.export.export` and reports.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from inpainting.cli.errors import exit_on_user_error
from inpainting.cli.hints import exit_on_unknown_key
from inpainting.errors import ConfigError
from inpainting.inference.export import export
from inpainting.resources import conf_dir

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="export")
def main(cfg: DictConfig) -> None:
    log.info("config:\n%s", OmegaConf.to_yaml(cfg))
    with exit_on_user_error():
        if not cfg.get("ckpt_path"):
            raise ConfigError("ckpt_path is required: the training .ckpt (or generator file) to export")
        export(cfg.ckpt_path, cfg.format, cfg.get("output"))


if __name__ == "__main__":
    exit_on_unknown_key("export")
    main()
