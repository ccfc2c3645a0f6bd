"""The explicit registry of generator networks that a file from elsewhere may name.

A checkpoint or generator file names its network by a key of :data:`GENERATORS` (the class path that
``conf/model/*.yaml`` writes as ``_target_``, or the short name) and gives its arguments as plain data.
:func:`build_network` looks the name up in this dict, never imports or resolves anything the file names, and
refuses any argument that is not a number, string, boolean, None or a list of those: no ``_target_``,
``_partial_`` or other Hydra key, no ``${...}`` interpolation, no nested mapping. So a crafted file can at most
pick one of these classes, with sizes inside :data:`SIZE_LIMITS` (checked before anything is allocated; a
``base_channels`` of a million would ask for terabytes) and at most :data:`MAX_PARAMETERS` parameters (counted
on PyTorch's ``meta`` device, which allocates no memory and draws no random numbers).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from inpainting.errors import UserError
from inpainting.models.gated_ca import GatedCANet
from inpainting.models.pconv_unet import PConvUNet
from inpainting.models.sa_unet import SAUNet
from inpainting.models.sa_unet_video import SAUNetVideo

__all__ = [
    "GENERATORS",
    "MAX_PARAMETERS",
    "SIZE_LIMITS",
    "UnsafeModelConfig",
    "build_network",
    "check_model_config",
    "check_plain_arguments",
    "network_class",
]

#: name -> class; both the short name and the class path (what configs write as ``_target_``) are accepted
GENERATORS: dict[str, type[nn.Module]] = {}
for _name, _cls in {
    "sa_unet": SAUNet,
    "sa_unet_video": SAUNetVideo,
    "pconv_unet": PConvUNet,
    "gated_ca": GatedCANet,
}.items():
    GENERATORS[_name] = _cls
    GENERATORS[f"{_cls.__module__}.{_cls.__qualname__}"] = _cls

_SCALARS = (bool, int, float, str, type(None))

#: the most parameters a network from a file may have (4 GB of float32; the shipped sa_unet has 1.1 million)
MAX_PARAMETERS = 10**9
#: the longest list any network argument may be
MAX_LIST_LENGTH = 64
#: ``(lowest, highest)`` of each size argument (an int, or every int of a list), per network class. They bound
#: what a build allocates and what a forward pass pads or unfolds (window, dilation, patch sizes); the values
#: conf/model/*.yaml and the experiments use sit well inside.
_COMMON: dict[str, tuple[int, int]] = {
    "in_channels": (1, 16),
    "out_channels": (1, 16),
    "base_channels": (1, 1024),
}
SIZE_LIMITS: dict[type[nn.Module], dict[str, tuple[int, int]]] = {
    SAUNet: {
        **_COMMON,
        "channel_mults": (1, 64),
        "blocks_per_level": (1, 16),
        "num_heads": (1, 64),
        "window_size": (1, 256),
        "qkv_kernel": (1, 15),
        "kv_pool": (1, 64),
        "kv_grid": (0, 1024),
        "fill_prior_relax": (0, 256),
    },
    PConvUNet: {**_COMMON, "channel_mults": (1, 64), "kernel_sizes": (1, 31)},
    GatedCANet: {**_COMMON, "dilations": (1, 64), "attention_rate": (1, 16), "patch_size": (1, 15)},
}


class UnsafeModelConfig(UserError, ValueError):
    """A model config that names an unregistered network or carries anything but plain-data arguments."""


def network_class(name: Any) -> type[nn.Module]:
    """The registered class for ``name`` (exact key, no import); an :class:`UnsafeModelConfig` otherwise."""
    if not isinstance(name, str) or name not in GENERATORS:
        known = ", ".join(sorted(k for k in GENERATORS if "." not in k))
        raise UnsafeModelConfig(
            f"refusing to build {name!r}: not a registered network (registered: {known}, or their class paths)"
        )
    return GENERATORS[name]


def check_plain_arguments(arguments: dict[str, Any], where: str = "model") -> None:
    """Refuse anything in ``arguments`` that is not a scalar or a list of plain values (see the module doc)."""
    for key, value in arguments.items():
        if not isinstance(key, str) or key.startswith("_"):
            raise UnsafeModelConfig(
                f"{where}: refusing argument {key!r}: special (Hydra) keys are not accepted"
            )
        _check_value(value, f"{where}.{key}")


def _check_value(value: Any, where: str) -> None:
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_LIST_LENGTH:
            raise UnsafeModelConfig(
                f"{where}: refusing a list of {len(value)} items; network arguments have at most {MAX_LIST_LENGTH}"
            )
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
    elif not isinstance(value, _SCALARS):
        raise UnsafeModelConfig(
            f"{where}: refusing a {type(value).__name__} value; network arguments must be numbers, strings, "
            "booleans, None or lists of those"
        )
    elif isinstance(value, float) and not math.isfinite(value):
        raise UnsafeModelConfig(f"{where}: refusing {value!r}; arguments must be finite numbers")
    elif isinstance(value, str) and "${" in value:
        raise UnsafeModelConfig(
            f"{where}: refusing the interpolation {value!r}; arguments must be literal values"
        )


def build_network(config: dict[str, Any]) -> nn.Module:
    """Build the network ``config`` names (``_target_`` or ``name``) from its plain-data arguments."""
    cls, arguments = check_model_config(config)
    return cls(**arguments)


def check_model_config(config: dict[str, Any]) -> tuple[type[nn.Module], dict[str, Any]]:
    """``(class, arguments)`` of a model config, after every check :func:`build_network` makes; builds nothing."""
    if not isinstance(config, dict):
        raise UnsafeModelConfig(f"a model config must be a mapping, got {type(config).__name__}")
    arguments = dict(config)
    name = arguments.pop("_target_", None) or arguments.pop("name", None)
    cls = network_class(name)
    check_plain_arguments(arguments)
    try:
        inspect.signature(cls).bind(**arguments)
    except TypeError as error:
        raise TypeError(f"{name} does not take these arguments: {error}") from error
    check_sizes(cls, arguments)
    return cls, arguments


def check_sizes(cls: type[nn.Module], arguments: dict[str, Any]) -> None:
    """Refuse size arguments outside :data:`SIZE_LIMITS`, then networks over :data:`MAX_PARAMETERS` parameters.

    The limits come first so the parameter count (a build on the ``meta`` device: shapes only, no memory, no
    random numbers) never loops over a huge list; what the class's own checks refuse (a zero, a wrong attention
    name) is its ``ValueError``.
    """
    for key, (low, high) in SIZE_LIMITS.get(cls, {}).items():
        if key not in arguments:
            continue
        value = arguments[key]
        items = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in items):
            what = "integers" if isinstance(value, (list, tuple)) else "an integer"
            raise UnsafeModelConfig(
                f"model.{key}={value!r} is out of range: {cls.__name__} accepts {what} from {low} to {high}"
            )
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        net = cls(**arguments)
    count = sum(p.numel() for p in net.parameters())
    if count > MAX_PARAMETERS:
        raise UnsafeModelConfig(
            f"model: refusing a {cls.__name__} of {count:,} parameters (at most {MAX_PARAMETERS:,}); "
            "its size arguments (base_channels, channel_mults, ...) are too large"
        )
