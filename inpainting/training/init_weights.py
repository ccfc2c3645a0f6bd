"""``init_from=``: start a run from released or earlier weights (fine-tuning), with a fresh optimizer and schedule.

The source is read by the one safe reader (``inference/checkpoint.py``: ``weights_only=True``, registered network,
plain-data config; the EMA generator where a GAN checkpoint has one). Only tensors are copied: the configured
network keeps its own architecture, so an image model's weights can initialise a video model with the same layers.
Resuming a run (optimizer, step, schedule) stays ``ckpt_path=``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from inpainting.errors import ConfigError
from inpainting.inference.checkpoint import default_weights_path, load_generator

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "default"


def resolve_init_source(source: str) -> Path:
    """``default`` names the shipped weights; anything else is a path to a generator file or a training checkpoint."""
    path = default_weights_path() if source == DEFAULT_SOURCE else Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"init_from={source}: no such file (expected 'default', a generator file .pt or a training .ckpt)"
        )
    return path


def split_fitting(
    target: dict[str, Tensor], source: dict[str, Tensor]
) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """``(weights that fit, layers whose shape differs, target layers the source lacks)``."""
    fitting, wrong_shape, missing = {}, [], []
    for key, value in target.items():
        if key not in source:
            missing.append(key)
        elif source[key].shape != value.shape:
            wrong_shape.append(f"{key} {tuple(source[key].shape)} -> {tuple(value.shape)}")
        else:
            fitting[key] = source[key]
    return fitting, wrong_shape, missing


def load_initial_weights(net: nn.Module, source: str, strict: bool = True) -> list[str]:
    """Copy the weights of ``source`` into ``net``; return the names of the layers left at their initialisation.

    ``strict``: any layer whose shape differs or that the source lacks is a one-line error naming the layers;
    ``strict=False`` loads what fits and logs what it skipped.
    """
    path = resolve_init_source(source)
    source_net, config = load_generator(path)
    weights = source_net.state_dict()
    fitting, wrong_shape, missing = split_fitting(net.state_dict(), weights)
    # parameters a network declares its own (a video model's cross-frame bias, which acts only between frames)
    # keep their initialisation: not an error, even when strict
    extras = tuple(getattr(net, "video_only_parameters", ()))
    missing = [key for key in missing if not (extras and key.endswith(extras))]
    unused = sorted(set(weights) - set(net.state_dict()))
    skipped = wrong_shape + missing
    if strict and (skipped or unused):
        parts = [
            f"shape differs: {', '.join(wrong_shape[:5])}" if wrong_shape else "",
            f"not in the file: {', '.join(missing[:5])}" if missing else "",
            f"not in this network: {', '.join(unused[:5])}" if unused else "",
        ]
        raise ConfigError(
            f"init_from={source}: {path} does not fit the configured network ("
            + "; ".join(p for p in parts if p)
            + f"; {len(skipped) + len(unused)} layer(s) in all); set init_strict=false to load the layers that fit"
        )
    with torch.no_grad():
        net.load_state_dict(fitting, strict=False)
    log.info(
        "init_from=%s: loaded %d of %d tensors (%s weights of %s)%s",
        source,
        len(fitting),
        len(net.state_dict()),
        config.get("weights", "raw"),
        path,
        f"; left at initialisation: {', '.join(skipped[:10])}" + (" ..." if len(skipped) > 10 else "")
        if skipped
        else "",
    )
    return skipped
