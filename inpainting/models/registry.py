"""The explicit registry of generator networks that a file from elsewhere may name.

A checkpoint or generator file names its network by a key of :data:`GENERATORS` (the class path that
``conf/model/*.yaml`` writes as ``_target_``, or the short name) and gives its arguments as plain data.
:func:`build_network` looks the name up in this dict, never imports or resolves anything the file names, and
refuses any argument that is not a number, string, boolean, None or a list of those: no ``_target_``,
``_partial_`` or other Hydra key, no ``${...}`` interpolation, no nested mapping. So a crafted file can at most
pick one of these classes with odd sizes, which the class's own checks then refuse.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from inpainting.errors import UserError
from inpainting.models.gated_ca import GatedCANet
from inpainting.models.pconv_unet import PConvUNet
from inpainting.models.sa_unet import SAUNet
from inpainting.models.sa_unet_video import SAUNetVideo

__all__ = [
    "GENERATORS",
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
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
    elif not isinstance(value, _SCALARS):
        raise UnsafeModelConfig(
            f"{where}: refusing a {type(value).__name__} value; network arguments must be numbers, strings, "
            "booleans, None or lists of those"
        )
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
    return cls, arguments
