"""``python -m inpainting.train``: compose the config, instantiate, fit, return the metrics.

Thin on purpose (lightning-hydra-template's shape): :func:`inpainting.training.fit.train` instantiates what the
config's ``_target_`` entries name and fits; this module composes ``conf/train.yaml``, checks it and returns
``optimized_metric`` to sweepers.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from inpainting.cli.errors import exit_on_user_error
from inpainting.cli.header import print_run_header
from inpainting.cli.hints import exit_on_unknown_key
from inpainting.cli.instantiate import check_required
from inpainting.resources import conf_dir
from inpainting.training.fit import train

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``optimized_metric`` for sweepers."""
    with exit_on_user_error():
        check_required(cfg)
        print_run_header(cfg)
        metrics = train(cfg)
    name = cfg.get("optimized_metric")
    if name and name not in metrics:
        log.warning("optimized_metric %r was not logged; available: %s", name, sorted(metrics))
        return None
    return metrics.get(name) if name else None


if __name__ == "__main__":
    exit_on_unknown_key("train")
    main()
