"""The papers' feature metrics: FID (Inception-v3, 2015 TF weights) and LPIPS v0.1 (AlexNet, VGG16 heads).

Weights are files by their ecosystem names, looked up in this order:

1. a path given in the config (``fid_weights=``, ``lpips_alex_weights=``, ``lpips_vgg_weights=``);
2. the folder ``$INPAINTING_METRIC_WEIGHTS``;
3. torch.hub's cache, ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``), where
   torch-fidelity, pytorch-fid, torchmetrics and torchvision put them when they download them.

Nothing is downloaded (this project runs offline); with ``fid=auto`` / ``lpips=auto`` a metric whose file is
missing is left out with one log line, with ``true`` the run stops with one line naming the file and the folders.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from inpainting.errors import ConfigError
from inpainting.evaluation.inception import FIDInceptionV3
from inpainting.evaluation.lpips import BACKBONE_FILES, LPIPS

log = logging.getLogger(__name__)

WEIGHTS_ENV = "INPAINTING_METRIC_WEIGHTS"
#: accepted names of the FID Inception state dict (pytorch-fid's name first, torch-fidelity's cache name second)
INCEPTION_FILES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
LPIPS_NETS = ("alex", "vgg")


class MissingWeightsError(FileNotFoundError):
    """A standard metric was asked for and its weight file is not here."""


def search_dirs() -> list[Path]:
    """Where weights are looked for after an explicit path: ``$INPAINTING_METRIC_WEIGHTS``, then torch.hub's cache."""
    dirs = [Path(os.environ[WEIGHTS_ENV]).expanduser()] if os.environ.get(WEIGHTS_ENV) else []
    return [*dirs, Path(torch.hub.get_dir()) / "checkpoints"]


def find_weights(names: tuple[str, ...], explicit: str | os.PathLike | None, what: str) -> Path | None:
    """The first existing file among ``explicit`` and ``names`` in :func:`search_dirs`; None when there is none.

    An explicit path that does not exist is an error at once (a typo should not silently drop a column).
    """
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"{what}: {path} not found (expected the file {names[0]})")
        return path
    for folder in search_dirs():
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def missing_message(names: tuple[str, ...], what: str, option: str) -> str:
    """One line: which file is missing and where to put it."""
    folders = " or ".join(str(d) for d in search_dirs())
    return (
        f"{what} needs {names[0]} (not found): put it in {folders} (or ${WEIGHTS_ENV}), or pass {option}=PATH"
    )


def _wanted(setting: object) -> str:
    """``auto`` (use when present), ``true`` (required) or ``false`` (off) from a config value."""
    text = str(setting).lower()
    if text in ("auto", "none"):
        return "auto"
    if text in ("true", "1", "yes", "on"):
        return "true"
    if text in ("false", "0", "no", "off"):
        return "false"
    raise ConfigError(f"fid= / lpips= take auto, true or false, got {setting!r}")


@dataclass
class StandardMetrics:
    """Loaded standard networks; either may be absent. ``sources`` records which file each came from."""

    inception: FIDInceptionV3 | None = None
    lpips: dict[str, LPIPS] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.inception is None and not self.lpips

    @torch.no_grad()
    def inception_features(self, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """uint8 ``N x H x W x 3`` -> float64 ``N x 2048`` pool features (empty when FID is off)."""
        if self.inception is None:
            return np.zeros((len(images), 0))
        parts = [
            self.inception(
                torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).permute(0, 3, 1, 2)
            )
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(parts).double().numpy()

    @torch.no_grad()
    def lpips_distances(
        self, pred: torch.Tensor, target: torch.Tensor, batch_size: int = 16
    ) -> dict[str, np.ndarray]:
        """``{"lpips_alex": B, "lpips_vgg": B}`` for ``B x 3 x H x W`` tensors in [0, 1]."""
        out = {}
        for net, model in self.lpips.items():
            parts = [
                model(pred[i : i + batch_size], target[i : i + batch_size])
                for i in range(0, len(pred), batch_size)
            ]
            out[f"lpips_{net}"] = torch.cat(parts).double().numpy()
        return out


def load_standard_metrics(
    fid: object = "auto",
    lpips: object = "auto",
    fid_weights: str | None = None,
    lpips_weights: dict[str, str | None] | None = None,
) -> StandardMetrics:
    """Load what is asked for and present (see the module docstring for ``auto``/``true``/``false``)."""
    metrics = StandardMetrics()
    mode = _wanted(fid)
    if mode != "false":
        path = find_weights(INCEPTION_FILES, fid_weights, "FID")
        if path is None:
            message = missing_message(INCEPTION_FILES, "FID (Inception-v3, 2015 TF weights)", "fid_weights")
            if mode == "true":
                raise MissingWeightsError(message)
            log.info("FID left out: %s", message)
        else:
            metrics.inception = _load_inception(path)
            metrics.sources["fid"] = str(path)
    mode = _wanted(lpips)
    if mode != "false":
        for net in LPIPS_NETS:
            names = (BACKBONE_FILES[net],)
            explicit = (lpips_weights or {}).get(net)
            path = find_weights(names, explicit, f"LPIPS ({net})")
            if path is None:
                message = missing_message(names, f"LPIPS v0.1 ({net})", f"lpips_{net}_weights")
                if mode == "true":
                    raise MissingWeightsError(message)
                log.info("LPIPS (%s) left out: %s", net, message)
                continue
            metrics.lpips[net] = LPIPS(net, path)
            metrics.sources[f"lpips_{net}"] = str(path)
    return metrics


def _load_inception(path: Path) -> FIDInceptionV3:
    """Strict load of a tensors-only state dict (``weights_only=True``: no code in the file runs)."""
    net = FIDInceptionV3()
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise MissingWeightsError(
            f"{path} is not the FID Inception state dict: missing {missing[:3]}, unexpected {list(unexpected)[:3]}"
        )
    return net
