"""Rebuild a trained generator from a training checkpoint or a generator file, without unpickling objects.

Checkpoints written by ``inpainting.train`` carry the run's resolved config as plain data
(``inpainting_config``), so loading uses ``torch.load(weights_only=True)``: a crafted file cannot
run code, and the network is rebuilt from its ``_target_`` config, then its weights are loaded.
Only ``_target_`` classes under ``inpainting.models.`` are instantiated, so a crafted config cannot
name an arbitrary callable either.

A *generator file* (:func:`save_generator`) is what ships and what ``predict`` / the demo load: the
network's config and weights only (no optimizer state, discriminator or run config): about 4.4 MB for
the default sa_unet, a third or less of a training checkpoint::

    {"format": "inpainting-generator", "version": 1, "model": {...}, "state_dict": {...}, "metadata": {...}}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

NET_PREFIX = "net."
GENERATOR_FORMAT = "inpainting-generator"
GENERATOR_VERSION = 1
#: only network classes from this package are rebuilt from a file's config
ALLOWED_TARGET_PREFIX = "inpainting.models."
#: the shipped default model, used by predict and the demo when no ckpt_path is given
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "sa_unet_default.pt"
DEFAULT_WEIGHTS_ENV = "INPAINTING_WEIGHTS"


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


def _check_targets(node: Any, path: str | Path) -> None:
    """Refuse any ``_target_`` outside :data:`ALLOWED_TARGET_PREFIX` (instantiate would call it)."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and not str(target).startswith(ALLOWED_TARGET_PREFIX):
            raise CheckpointError(
                f"{path}: refusing to build {target!r}: only networks under {ALLOWED_TARGET_PREFIX} are loaded"
            )
        for value in node.values():
            _check_targets(value, path)
    elif isinstance(node, list):
        for value in node:
            _check_targets(value, path)


def build_generator(
    model_config: dict[str, Any], state_dict: dict[str, torch.Tensor], path: str | Path = "<memory>"
) -> nn.Module:
    """Instantiate the network a ``model`` config names and load ``state_dict`` into it (eval mode, CPU)."""
    if not isinstance(model_config, dict) or "_target_" not in model_config:
        raise CheckpointError(f"{path}: the model config has no _target_, so the network cannot be rebuilt")
    _check_targets(model_config, path)
    target = model_config["_target_"]
    try:
        net: nn.Module = instantiate(OmegaConf.create(model_config))
    except Exception as error:  # an older/newer config this code's network no longer accepts
        raise CheckpointError(
            f"{path}: cannot build {target} from the file's model config ({error}); "
            "the file was probably written by another version of inpainting"
        ) from error
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as error:
        raise CheckpointError(
            f"weights in {path} do not fit the {target} network built from its own config: {error}"
        ) from error
    return net.eval()


def load_generator(path: str | Path, expected_target: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Return ``(net, config)`` for a training checkpoint or a generator file; ``net`` is in eval mode on the CPU.

    ``config["model"]`` is the network's config in both cases (a training checkpoint returns its whole run
    config; a generator file ``{"model": ..., "metadata": ...}``). ``expected_target`` (a class path) makes a
    file of another model a clear error.
    """
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not an inpainting checkpoint")
    if "format" in checkpoint:
        config, state = _generator_entries(checkpoint, path)
    else:
        config = checkpoint.get("inpainting_config")
        if not isinstance(config, dict) or "model" not in config:
            raise CheckpointError(
                f"checkpoint {path} has no 'inpainting_config' with a 'model' entry: it was not written by "
                "inpainting.train (nor is it a generator file from inpainting.export), so the network cannot be "
                "rebuilt from it"
            )
        state = {
            k[len(NET_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(NET_PREFIX)
        }
    target = config["model"].get("_target_")
    if expected_target is not None and target != expected_target:
        raise CheckpointError(
            f"checkpoint {path} holds a {target} network, but {expected_target} was asked for"
        )
    return build_generator(config["model"], state, path), config


def _generator_entries(
    checkpoint: dict[str, Any], path: str | Path
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Validate a generator file's header; return ``({"model", "metadata"}, state_dict)``."""
    fmt, version = checkpoint.get("format"), checkpoint.get("version")
    if fmt != GENERATOR_FORMAT:
        raise CheckpointError(f"{path} has format {fmt!r}, expected {GENERATOR_FORMAT!r}")
    if version != GENERATOR_VERSION:
        raise CheckpointError(
            f"{path} is a {GENERATOR_FORMAT} file of version {version!r}; this version of inpainting reads "
            f"version {GENERATOR_VERSION} only: re-export it with this version (python -m inpainting.export)"
        )
    model, state = checkpoint.get("model"), checkpoint.get("state_dict")
    if not isinstance(model, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: a {GENERATOR_FORMAT} file needs 'model' and 'state_dict' dicts")
    return {"model": model, "metadata": checkpoint.get("metadata") or {}}, state


def save_generator(
    net: nn.Module, model_config: dict[str, Any], path: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Write the generator-only file (see the module docstring); atomically, tensors and plain data only.

    ``model_config`` is the network's ``_target_`` config (``conf/model/*.yaml`` resolved); ``metadata``
    plain data (source checkpoint, step, ...). Refuses a config that cannot rebuild ``net``.
    """
    from inpainting.checkpoint_io import atomic_torch_save

    config = OmegaConf.to_container(OmegaConf.create(model_config), resolve=True)
    if "_target_" not in config:
        raise CheckpointError("model_config needs a _target_ naming the network class")
    _check_targets(config, path)
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    payload = {
        "format": GENERATOR_FORMAT,
        "version": GENERATOR_VERSION,
        "model": config,
        "state_dict": state,
        # plain JSON data only (e.g. torch.__version__ is a TorchVersion object that weights_only refuses)
        "metadata": json.loads(json.dumps(dict(metadata or {}), default=str)),
    }
    path = Path(path)
    atomic_torch_save(payload, path)
    return path


def default_weights_path() -> Path:
    """The default model: ``$INPAINTING_WEIGHTS`` if set, else ``inpainting/weights/sa_unet_default.pt``."""
    return Path(os.environ.get(DEFAULT_WEIGHTS_ENV) or DEFAULT_WEIGHTS)


def resolve_weights(ckpt_path: str | os.PathLike | None) -> Path:
    """``ckpt_path`` if given, else the default weights; a missing file is a FileNotFoundError saying what to do."""
    if ckpt_path:
        path = Path(ckpt_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such file")
        return path
    path = default_weights_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"no ckpt_path given and the default weights {path} are missing. Pass ckpt_path=PATH (a training "
            ".ckpt, a generator .pt, a TorchScript .ts or an .onnx file), or create the default with "
            "`python -m inpainting.export ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt "
            f"format=generator output={path}` (or set ${DEFAULT_WEIGHTS_ENV})"
        )
    return path
