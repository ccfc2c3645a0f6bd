"""Evaluation methods behind one interface: ``method(image uint8 HxWx3, mask uint8 HxW) -> uint8 HxWx3``.

A method spec is a classical baseline's plain name (``telea``, ``navier_stokes``, ``biharmonic``,
``patchmatch``, ``push_pull``, ``harmonic``), ``default`` (the shipped model,
:func:`inpainting.inference.checkpoint.default_weights_path`), or a trained or exported model: ``ckpt:PATH``,
optionally named ``NAME@ckpt:PATH`` (a training .ckpt, generator .pt, ONNX file, or with ``trust_code=true`` a
TorchScript file). When NAME is a
``conf/model`` option (``sa_unet``, ``unet``), the checkpoint must hold that network, so a table never shows one
model's numbers under another's name.

Models run through :class:`inpainting.inference.Inpainter`, the object ``python -m inpainting.predict`` uses,
with predict's defaults (:data:`inpainting.inference.inpainter.INFERENCE_DEFAULTS`), so the evaluator scores
exactly what predict writes for the same image and mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from inpainting.errors import ConfigError
from inpainting.evaluation.baselines import BASELINES, get_baseline
from inpainting.inference import Inpainter, load_model
from inpainting.inference.checkpoint import CheckpointError, default_weights_path
from inpainting.resources import conf_dir

CKPT_PREFIX = "ckpt:"
DEFAULT_METHOD = "default"
MODEL_CONF_DIR = conf_dir() / "model"
# config keys that make two networks of the same class different models (sa_unet vs unet)
ARCHITECTURE_KEYS = ("_target_", "attention", "attention_in", "kv_pool", "mask_aware")


@dataclass
class Method:
    name: str
    inpaint: Callable[
        [np.ndarray, np.ndarray], np.ndarray
    ]  # a baseline, or an inference.Inpainter for models
    kind: str  # "baseline" | "model"


def _model_option_config(name: str) -> dict | None:
    """The config of model option ``name`` (``conf/model/<name>.yaml`` with its defaults list) as Hydra composes
    it for ``model=<name>``, or None when there is no such option."""
    if not (MODEL_CONF_DIR / f"{name}.yaml").is_file():
        return None
    if GlobalHydra.instance().is_initialized():  # inside python -m inpainting.evaluate: Hydra's own conf/
        cfg = compose(config_name=f"model/{name}")
    else:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name=f"model/{name}")
    return OmegaConf.to_container(cfg.model, resolve=True)


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


def build_method(
    spec: str, device: str = "cpu", inference: dict | None = None, trust_code: bool = False
) -> Method:
    """Parse one method spec (see the module docstring) into a :class:`Method`; ``trust_code``: allow TorchScript."""
    name, _, rest = spec.partition("@") if "@" in spec else ("", "", spec)
    options = dict(inference or {})  # unset options: the Inpainter's defaults, which are predict's
    if rest == DEFAULT_METHOD:
        model = load_model(None, device)
        return Method(name or DEFAULT_METHOD, Inpainter(model, **options), "model")
    if rest.startswith(CKPT_PREFIX):
        ckpt = rest[len(CKPT_PREFIX) :]
        model = load_model(ckpt, device, trust_code=trust_code)
        name = name or Path(ckpt).resolve().parent.parent.name or Path(ckpt).stem
        model_config = model.info.get("model")
        if isinstance(model_config, dict):
            check_model_name(name, ckpt, model_config)
        return Method(name, Inpainter(model, **options), "model")
    if rest in BASELINES:
        return Method(name or rest, get_baseline(rest), "baseline")
    raise ConfigError(
        f"unknown method {spec!r}: use a baseline name ({', '.join(BASELINES)}), {DEFAULT_METHOD!r} (the shipped "
        f"model, {default_weights_path()}) or ckpt:PATH / NAME@ckpt:PATH"
    )


def build_methods(
    specs: list[str] | None, device: str = "cpu", inference: dict | None = None, trust_code: bool = False
) -> list[Method]:
    if not specs:
        raise ConfigError(
            f"methods is empty: give at least one, e.g. methods=[telea,ckpt:logs/.../last.ckpt] "
            f"(baselines: {', '.join(BASELINES)})"
        )
    methods = [build_method(str(spec), device, inference, trust_code) for spec in specs]
    check_unique_names([m.name for m in methods])
    return methods


def check_unique_names(names: list[str]) -> None:
    """Refuse two methods of the same name (their rows would merge in every table)."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"methods have duplicate names {duplicates}: name them, e.g. a@ckpt:PATH b@ckpt:PATH"
        )
