"""The papers' feature metrics: FID (Inception-v3, 2015 TF weights) and LPIPS v0.1 (AlexNet, VGG16 heads).

Weights are files by their ecosystem names, looked up in this order:

1. a path given in the config (``fid_weights=``, ``lpips_alex_weights=``, ``lpips_vgg_weights=``);
2. the folder ``$INPAINTING_METRIC_WEIGHTS``;
3. torch.hub's cache, ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``), where
   torch-fidelity, pytorch-fid, torchmetrics and torchvision put them when they download them.

When none is there, the file is fetched once from its canonical address (:data:`DOWNLOADS`) into torch.hub's
cache, its SHA-256 checked against the published prefix before it is kept (``download_weights=false`` or
``$INPAINTING_OFFLINE=1`` / ``$HF_HUB_OFFLINE=1`` turn that off). With ``fid=auto`` / ``lpips=auto`` a metric whose
file is still missing (offline, download failed) is left out with one log line, with ``true`` the run stops with
that line, naming the file, the folders and why the download did not happen. A download whose checksum does not
match is refused with one line and nothing is kept, whatever the mode: bytes other than the published ones at
the canonical address are for the user to look into, not to score with.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from inpainting.errors import ConfigError, UserError
from inpainting.evaluation.inception import FIDInceptionV3
from inpainting.evaluation.lpips import BACKBONE_FILES, LPIPS

log = logging.getLogger(__name__)

WEIGHTS_ENV = "INPAINTING_METRIC_WEIGHTS"
#: accepted names of the FID Inception state dict (pytorch-fid's name first, torch-fidelity's cache name second)
INCEPTION_FILES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
LPIPS_NETS = ("alex", "vgg")
#: environment variables that, set to 1/true/yes, forbid downloads (ours, and Hugging Face's usual one)
OFFLINE_ENV = ("INPAINTING_OFFLINE", "HF_HUB_OFFLINE")
#: seconds a stalled connection may wait before the download counts as failed (torch.hub sets no timeout)
DOWNLOAD_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class WeightSource:
    """A canonical address and the start of the file's SHA-256 as its publisher gives it."""

    url: str
    sha256_prefix: str


# The one checksum table. Every file here is named in torch.hub's ``NAME-<first 8 hex of SHA-256>.pth``
# convention by its publisher, and that prefix is what is checked (torch.hub's ``hash_prefix``; torchvision
# loads its two files with ``check_hash=True`` on the same prefixes). The Inception file is torch-fidelity's
# release asset (pytorch-fid's ``pt_inception-...-6726825d.pth`` carries the same prefix).
# Only files with a published checksum are fetched: the LPIPS v0.1 heads of richzhang/PerceptualSimilarity
# (``lpips/weights/v0.1/*.pth``) have none, so they are never downloaded; they need not be, as torchmetrics ships
# them (:func:`inpainting.evaluation.lpips.head_weights_path`). A file not in this table keeps the manual message.
DOWNLOADS: dict[str, WeightSource] = {
    INCEPTION_FILES[1]: WeightSource(
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILES[1], "6726825d"
    ),
    BACKBONE_FILES["alex"]: WeightSource(
        "https://download.pytorch.org/models/" + BACKBONE_FILES["alex"], "7be5be79"
    ),
    BACKBONE_FILES["vgg"]: WeightSource(
        "https://download.pytorch.org/models/" + BACKBONE_FILES["vgg"], "397923af"
    ),
}


class MissingWeightsError(UserError, FileNotFoundError):
    """A standard metric was asked for and its weight file is not here (or arrived with the wrong checksum)."""


def hub_checkpoints() -> Path:
    """torch.hub's cache folder, where downloads go (and where torchvision / torch-fidelity put theirs)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def offline_reason(download: bool = True) -> str | None:
    """Why nothing may be downloaded now (the config flag or an offline variable), or None when it may."""
    if not download:
        return "downloads off (download_weights=false)"
    for name in OFFLINE_ENV:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"downloads off (${name}={os.environ[name]})"
    return None


def download_weights(names: tuple[str, ...], what: str) -> tuple[Path | None, str]:
    """Fetch the first of ``names`` that :data:`DOWNLOADS` lists into :func:`hub_checkpoints`, checksum verified.

    Returns ``(path, "")`` or, when there is no network or no published checksum, ``(None, reason)``. A file whose
    SHA-256 does not start with the published prefix raises :class:`MissingWeightsError` and is not kept
    (torch.hub writes to a ``.partial`` file beside the target and removes it on any failure).
    """
    name = next((n for n in names if n in DOWNLOADS), None)
    if name is None:
        return None, f"no published checksum for {names[0]}, so it is not downloaded"
    source = DOWNLOADS[name]
    target = hub_checkpoints() / name
    log.info("%s: downloading %s to %s", what, source.url, target)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            source.url, str(target), hash_prefix=source.sha256_prefix, progress=True
        )
    except urllib.error.URLError as error:  # before OSError: it is one, with the useful part in .reason
        return None, f"download failed: {source.url}: {_one_line(error.reason)}"
    except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out, cut short
        return None, f"download failed: {source.url}: {_one_line(error)}"
    except RuntimeError as error:  # torch.hub's "invalid hash value (expected ..., got ...)"
        raise MissingWeightsError(
            f"{what}: {source.url} gave a file whose SHA-256 does not start with {source.sha256_prefix} "
            f"({_one_line(error)}); nothing was kept. Retry, or put the right {name} in {target.parent} by hand"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return target, ""


def _one_line(reason: object) -> str:
    return " ".join(str(reason).split())


def search_dirs() -> list[Path]:
    """Where weights are looked for after an explicit path: ``$INPAINTING_METRIC_WEIGHTS``, then torch.hub's cache."""
    dirs = [Path(os.environ[WEIGHTS_ENV]).expanduser()] if os.environ.get(WEIGHTS_ENV) else []
    return [*dirs, hub_checkpoints()]


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


def missing_message(names: tuple[str, ...], what: str, option: str, reason: str = "") -> str:
    """One line: which file is missing, where to put it and (``reason``) why it was not downloaded."""
    folders = " or ".join(str(d) for d in search_dirs())
    return (
        f"{what} needs {names[0]} (not found): put it in {folders} (or ${WEIGHTS_ENV}), or pass {option}=PATH"
        + (f"; {reason}" if reason else "")
    )


def locate_or_fetch(
    names: tuple[str, ...], explicit: str | None, what: str, option: str, download: bool
) -> tuple[Path | None, str]:
    """The weight file (found, else downloaded when allowed) or ``(None, the one-line missing message)``."""
    path = find_weights(names, explicit, what)
    if path is not None:
        return path, ""
    reason = offline_reason(download)
    if reason is None:
        path, reason = download_weights(names, what)
    return path, "" if path is not None else missing_message(names, what, option, reason)


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
    download: bool = True,
) -> StandardMetrics:
    """Load what is asked for and present or fetched (module docstring: ``auto``/``true``/``false``, downloads)."""
    metrics = StandardMetrics()
    mode = _wanted(fid)
    if mode != "false":
        what = "FID (Inception-v3, 2015 TF weights)"
        path, message = locate_or_fetch(INCEPTION_FILES, fid_weights, what, "fid_weights", download)
        if path is None:
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
            what = f"LPIPS v0.1 ({net})"
            path, message = locate_or_fetch(names, explicit, what, f"lpips_{net}_weights", download)
            if path is None:
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
