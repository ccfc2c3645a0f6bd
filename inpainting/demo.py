"""``python -m inpainting.demo``: a local web page to upload a photo, brush over what to remove, and run.

Serves on 127.0.0.1 (this machine only) unless ``host=`` (or ``--host``) says otherwise; gradio analytics are
off. The page and its checks are :mod:`inpainting.inference.demo_app` (gradio, the ``demo`` extra); this module
composes ``conf/demo.yaml``, builds the page and serves it.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from inpainting.cli.errors import exit_on_user_error
from inpainting.cli.hints import exit_on_unknown_key
from inpainting.inference.demo_app import create, launch
from inpainting.resources import conf_dir

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="demo")
def main(cfg: DictConfig) -> None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    with exit_on_user_error():
        app, model = create(cfg)
    log.info("model: %s; serving http://%s:%s", model.describe(), cfg.host, cfg.port)
    launch(app, cfg)


def cli_aliases(argv: list[str]) -> list[str]:
    """``--host X`` / ``--port N`` (and ``--host=X``) -> the Hydra overrides ``host=X`` / ``port=N``."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        for flag in ("--host", "--port"):
            if arg == flag:
                out.append(f"{flag[2:]}={next(args, '')}")
                break
            if arg.startswith(flag + "="):
                out.append(f"{flag[2:]}={arg.split('=', 1)[1]}")
                break
        else:
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.argv = cli_aliases(sys.argv)
    exit_on_unknown_key("demo")
    main()
