"""Rebuild a trained generator from a training checkpoint, without unpickling arbitrary objects.

Checkpoints written by ``inpainting.train`` carry the run's resolved config as plain data
(``inpainting_config``), so loading uses ``torch.load(weights_only=True)``: a crafted file cannot
run code, and the network is rebuilt from its ``_target_`` config, then its weights are loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

NET_PREFIX = "net."


class CheckpointError(ValueError):
    """A checkpoint that is not an inpainting training checkpoint or does not fit the network."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file as plain tensors and containers (never arbitrary pickled objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist (expected a .ckpt written by inpainting.train)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(
            f"cannot load checkpoint {path} safely (weights_only=True): {error}. "
            "Only checkpoints holding tensors and plain data are accepted."
        ) from error


def load_generator(path: str | Path, expected_target: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Return ``(net, run_config)`` for a checkpoint; ``net`` is in eval mode on the CPU.

    ``expected_target`` (a class path) makes a checkpoint of another model a clear error.
    """
    checkpoint = read_checkpoint(path)
    config = checkpoint.get("inpainting_config")
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(
            f"checkpoint {path} has no 'inpainting_config' with a 'model' entry: it was not written by "
            "inpainting.train, so the network cannot be rebuilt from it"
        )
    target = config["model"].get("_target_")
    if expected_target is not None and target != expected_target:
        raise CheckpointError(
            f"checkpoint {path} holds a {target} network, but {expected_target} was asked for"
        )
    net: nn.Module = instantiate(OmegaConf.create(config["model"]))
    state = {k[len(NET_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(NET_PREFIX)}
    try:
        net.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(
            f"weights in {path} do not fit the {target} network built from its own config: {error}"
        ) from error
    return net.eval(), config
