"""Evaluation methods behind one interface: ``method(image uint8 HxWx3, mask uint8 HxW) -> uint8 HxWx3``.

A method spec is a classical baseline's plain name (``telea``, ``navier_stokes``, ``biharmonic``,
``patchmatch``) or a trained checkpoint: ``ckpt:PATH``, optionally named ``NAME@ckpt:PATH``. When NAME
is a ``conf/model`` option (``sa_unet``, ``unet``), the checkpoint must hold that network, so a table
never shows one model's numbers under another's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from torch import nn

from inpainting.evaluation.baselines import BASELINES, Inpainter, get_baseline
from inpainting.inference import from_module, to_model_input, to_uint8
from inpainting.inference.checkpoint import CheckpointError, load_generator
from inpainting.resources import conf_dir

CKPT_PREFIX = "ckpt:"
MODEL_CONF_DIR = conf_dir() / "model"
# config keys that make two networks of the same class different models (sa_unet vs unet)
ARCHITECTURE_KEYS = ("_target_", "attention", "attention_in", "kv_pool", "mask_aware")


@dataclass
class Method:
    name: str
    inpaint: Inpainter
    kind: str  # "baseline" | "model"


class ModelInpainter:
    """Runs a generator on uint8 images, returning the uint8 composite (known pixels bit-identical).

    The same conversion and padding path as ``python -m inpainting.predict`` (inpainting.inference), in batches.
    """

    def __init__(self, net: nn.Module, device: str = "cpu") -> None:
        self.model = from_module(net, device)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.batch(image[None], mask[None])[0]

    def batch(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """``N x H x W x 3`` uint8 images and ``N x H x W`` masks -> ``N x H x W x 3`` uint8 composites."""
        holes = masks != 0
        filled = to_uint8(self.model(*to_model_input(images, holes)))
        return np.where(holes[..., None], filled, images).astype(np.uint8)


def _model_option_config(name: str) -> dict | None:
    """The composed config of ``conf/model/<name>.yaml`` (following its defaults list), or None."""
    path = MODEL_CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        return None
    node = OmegaConf.load(path)
    merged = OmegaConf.create()
    for parent in node.get("defaults", []):
        if isinstance(parent, str) and parent != "_self_":
            merged = OmegaConf.merge(merged, _model_option_config(parent) or {})
    node.pop("defaults", None)
    return OmegaConf.to_container(OmegaConf.merge(merged, node), resolve=True)


def check_model_name(name: str, ckpt: str, model_config: dict) -> None:
    """Refuse ``name@ckpt:PATH`` when ``name`` is a model option whose architecture differs from the checkpoint's."""
    expected = _model_option_config(name)
    if expected is None:
        return
    for key in ARCHITECTURE_KEYS:
        if key in expected and expected.get(key) != model_config.get(key):
            raise CheckpointError(
                f"method {name}@ckpt:{ckpt}: the checkpoint holds a network with {key}={model_config.get(key)!r}, "
                f"but model option {name!r} (conf/model/{name}.yaml) has {key}={expected[key]!r}"
            )


def build_method(spec: str, device: str = "cpu") -> Method:
    """Parse one method spec (see the module docstring) into a :class:`Method`."""
    name, _, rest = spec.partition("@") if "@" in spec else ("", "", spec)
    if rest.startswith(CKPT_PREFIX):
        ckpt = rest[len(CKPT_PREFIX) :]
        net, config = load_generator(ckpt)
        name = name or Path(ckpt).resolve().parent.parent.name or Path(ckpt).stem
        check_model_name(name, ckpt, config["model"])
        return Method(name, ModelInpainter(net, device), "model")
    if rest in BASELINES:
        return Method(name or rest, get_baseline(rest), "baseline")
    raise ValueError(
        f"unknown method {spec!r}: use a baseline name ({', '.join(BASELINES)}) or ckpt:PATH / NAME@ckpt:PATH"
    )


def build_methods(specs: list[str] | None, device: str = "cpu") -> list[Method]:
    if not specs:
        raise ValueError(
            f"methods is empty: give at least one, e.g. methods=[telea,ckpt:logs/.../last.ckpt] "
            f"(baselines: {', '.join(BASELINES)})"
        )
    methods = [build_method(str(spec), device) for spec in specs]
    names = [m.name for m in methods]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"methods have duplicate names {duplicates}: name them, e.g. a@ckpt:PATH b@ckpt:PATH"
        )
    return methods
