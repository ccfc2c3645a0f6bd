"""Rebuild a trained generator from a training checkpoint or a generator file, without running anything it names.

Files from elsewhere are hostile until proven otherwise, so every tool (training resume, predict, evaluate,
export, demo) reads them through :func:`load_generator` / :func:`check_checkpoint`:

- ``torch.load(weights_only=True)``: tensors and plain containers only, so a pickle payload cannot run;
- the network is named by a key of the explicit registry :data:`inpainting.models.registry.GENERATORS` and built
  from plain-data arguments (no ``_target_``/``_partial_`` below it, no ``${...}`` interpolation) of bounded
  size; nothing the file names is imported, resolved or instantiated through Hydra;
- weights must be finite: a NaN or infinite weight would only ever produce a wrong picture;
- a TorchScript file is code (its ``__setstate__`` runs on load, its ``forward`` on every image): it is never
  read here, and :func:`inpainting.inference.load_model` opens one only with ``trust_code=True``
  (:data:`TRUST_CODE_OPTION`), whatever the file's name.

A training checkpoint of a GAN run holds two generators; the EMA one (``net_ema.module.*``), which validation
and best-checkpoint selection use, is the one every tool loads, and the returned config says which it was
(``config["weights"]``: ``"ema"`` or ``"raw"``).

A *generator file* (:func:`save_generator`) is what ships and what ``predict`` / the demo load: the
network's config and weights only (no optimizer state, discriminator or run config), a fraction of a training
checkpoint (the shipped file's size: inpainting/weights/README.md)::

    {"format": "inpainting-generator", "version": 1, "model": {...}, "state_dict": {...}, "metadata": {...}}
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from inpainting.errors import UserError
from inpainting.models.registry import UnsafeModelConfig, check_model_config

#: the entries this project adds to a Lightning checkpoint (training.callbacks.RunConfigInCheckpoints writes them):
#: the run's resolved config as plain data (what every tool rebuilds the network from), and its wandb run id
CONFIG_KEY = "inpainting_config"
WANDB_ID_KEY = "inpainting_wandb_id"
#: state-dict prefixes of the generator and its EMA copy (the ``net`` / ``net_ema`` attributes of the modules)
NET_PREFIX = "net."
EMA_PREFIX = "net_ema.module."
GENERATOR_FORMAT = "inpainting-generator"
GENERATOR_VERSION = 1
#: the shipped default model, used by predict and the demo when no ckpt_path is given
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "sa_unet_default.pt"
DEFAULT_WEIGHTS_ENV = "INPAINTING_WEIGHTS"
#: the option of predict, evaluate and the demo that allows opening a file that carries code (TorchScript)
TRUST_CODE_OPTION = "trust_code"
#: what a Lightning training checkpoint always has, and a generator file never
LIGHTNING_KEY = "pytorch-lightning_version"


class CheckpointError(UserError, ValueError):
    """A checkpoint that is not an inpainting training checkpoint or does not fit the network."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file as plain tensors and containers (never arbitrary pickled objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist (expected a .ckpt written by inpainting.train)"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): an interrupted copy or download?")
    if is_torchscript(path):
        raise CheckpointError(
            f"{path} is a TorchScript file, which carries code, not a checkpoint: this reads training "
            "checkpoints (.ckpt) and generator files (.pt) only"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        # ``from None``: torch's own text advises loading with weights_only=False, which would run the payload
        raise CheckpointError(
            f"cannot load checkpoint {path} safely (weights_only=True): {load_failure_reason(error)}. "
            "Only checkpoints holding tensors and plain data are accepted."
        ) from None


def is_torchscript(path: str | Path) -> bool:
    """True when ``path`` is a zip archive holding TorchScript code, whatever its name; nothing is loaded."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name or name.endswith("constants.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


#: sentences of torch's load errors that must not reach users: they advise ``weights_only=False`` (running the
#: payload) or allow-listing the very global a crafted file names
_ADVICE = re.compile(r"weights_only|trusted source|safe_globals|documentation of torch\.load", re.IGNORECASE)
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_failure_reason(error: BaseException) -> str:
    """One line saying why ``torch.load(weights_only=True)`` refused a file, without torch's advice to unsafe it."""
    text = str(error)
    named = _GLOBAL.search(text)
    if named:
        return f"it needs the Python object {named.group(1)}, and unpickling such objects can run code"
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    reason = " ".join(s for s in sentences if s and not _ADVICE.search(s)).strip().rstrip(".")
    if reason:
        return reason[:300]
    if isinstance(error, EOFError):
        return "the file ends too early (truncated?)"
    return f"{type(error).__name__}: not a PyTorch checkpoint, or a damaged one"


def generator_state_dict(
    state_dict: dict[str, Tensor], prefer_ema: bool = True
) -> tuple[dict[str, Tensor], str]:
    """The generator's weights from a module/checkpoint ``state_dict`` (keys without prefix) and which they are.

    ``prefer_ema``: take the EMA generator (``net_ema.module.*``) when there is one (GAN runs validate and pick
    their best checkpoint with it), else the raw ``net.*``. Returns ``(state, "ema" | "raw")``.
    """
    prefixes = ((EMA_PREFIX, "ema"), (NET_PREFIX, "raw")) if prefer_ema else ((NET_PREFIX, "raw"),)
    for prefix, kind in prefixes:
        state = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if state:
            return state, kind
    raise CheckpointError(
        f"no generator weights (keys starting with {' or '.join(p for p, _ in prefixes)}) in this state dict"
    )


def build_generator(
    model_config: dict[str, Any], state_dict: dict[str, torch.Tensor], path: str | Path = "<memory>"
) -> nn.Module:
    """Build the registered network a ``model`` config names and load ``state_dict`` into it (eval mode, CPU)."""
    return _build_checked(model_config, check_model(model_config, path), state_dict, path)


def _build_checked(
    model_config: dict[str, Any],
    checked: tuple[type[nn.Module], dict[str, Any]],
    state_dict: dict[str, torch.Tensor],
    path: str | Path,
) -> nn.Module:
    """:func:`build_generator` for a config :func:`check_model` has already passed (``checked`` is its result)."""
    check_finite(state_dict, path)
    cls, arguments = checked
    target = model_config.get("_target_") or model_config.get("name")
    try:
        net = cls(**arguments)
    except (TypeError, ValueError) as error:  # an older/newer config this code's network no longer accepts
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


def check_finite(state_dict: dict[str, Any], path: str | Path) -> None:
    """Refuse weights that are not tensors or hold NaN/infinity (a diverged run or a damaged file)."""
    for key, value in state_dict.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{path}: weight {key!r} is a {type(value).__name__}, not a tensor")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"{path}: weight {key!r} holds NaN or infinite values (a diverged run or a damaged file); "
                "refusing to load it"
            )


def check_model(model_config: Any, path: str | Path) -> tuple[type[nn.Module], dict[str, Any]]:
    """Refuse a model config that names an unregistered network, carries more than plain-data arguments or asks
    for an oversized network; return ``(class, arguments)``."""
    if not isinstance(model_config, dict) or not (model_config.get("_target_") or model_config.get("name")):
        raise CheckpointError(f"{path}: the model config names no network, so it cannot be rebuilt")
    try:
        return check_model_config(model_config)
    except UnsafeModelConfig as error:
        raise CheckpointError(f"{path}: {error}") from None
    except (TypeError, ValueError) as error:  # arguments this code's network does not take, or refuses
        raise CheckpointError(
            f"{path}: {error}; the file was probably written by another version of inpainting"
        ) from None


def check_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint safely and check the network config it carries (registry, plain data); return it.

    What training resume calls before Lightning loads the file: a crafted config is refused up front instead
    of being carried into the resumed run's own checkpoints. Nothing is built: a network's random initialisation
    would draw from torch's global RNG and change the resumed run's data order.
    """
    checkpoint = read_checkpoint(path)
    check_training_checkpoint(checkpoint, path)
    return checkpoint


def check_training_checkpoint(checkpoint: Any, path: str | Path) -> None:
    """Refuse a loaded file that training cannot resume from: a generator file, an unsafe config, no Lightning state.

    Without this a generator file given to ``train ckpt_path=`` fails inside Lightning with
    ``KeyError: 'pytorch-lightning_version'``.
    """
    if isinstance(checkpoint, dict) and "format" in checkpoint:
        raise CheckpointError(
            f"ckpt_path={path} is a generator file (network and weights only, from inpainting.export), not a "
            "training checkpoint: training resumes from a run's checkpoints/last.ckpt; use a generator file "
            "with predict, evaluate (ckpt:PATH) or the demo instead"
        )
    _checkpoint_entries(checkpoint, path)  # refuses unsafe configs and files without generator weights
    if LIGHTNING_KEY not in checkpoint:
        raise CheckpointError(
            f"ckpt_path={path} has no {LIGHTNING_KEY!r} entry, so it is not a Lightning training checkpoint "
            "that training can resume from (expected a run's checkpoints/last.ckpt)"
        )


def load_generator(path: str | Path, expected_target: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Return ``(net, config)`` for a training checkpoint or a generator file; ``net`` is in eval mode on the CPU.

    ``config["model"]`` is the network's config in both cases (a training checkpoint returns its whole run
    config; a generator file ``{"model": ..., "metadata": ...}``); ``config["weights"]`` says whether the EMA or
    the raw generator was loaded. ``expected_target`` (a class path) makes a file of another model a clear error.
    """
    config, state, kind, checked = _checkpoint_entries(read_checkpoint(path), path)
    target = config["model"].get("_target_")
    if expected_target is not None and target != expected_target:
        raise CheckpointError(
            f"checkpoint {path} holds a {target} network, but {expected_target} was asked for"
        )
    net = _build_checked(config["model"], checked, state, path)
    return net, {**config, "weights": kind}


def _checkpoint_entries(
    checkpoint: Any, path: str | Path
) -> tuple[dict[str, Any], dict[str, torch.Tensor], str, tuple[type[nn.Module], dict[str, Any]]]:
    """``(config, generator state, "ema"|"raw", checked model)`` of a loaded training checkpoint or generator file.

    The model config is checked here, once (:func:`check_model`); ``checked`` is what the build uses."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not an inpainting checkpoint")
    if "format" in checkpoint:
        config, state = _generator_entries(checkpoint, path)
        checked = check_model(config["model"], path)
        return config, state, str(config["metadata"].get("weights", "raw")), checked
    config = checkpoint.get(CONFIG_KEY)
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(
            f"checkpoint {path} has no {CONFIG_KEY!r} with a 'model' entry: it was not written by "
            "inpainting.train (nor is it a generator file from inpainting.export), so the network cannot be "
            "rebuilt from it"
        )
    checked = check_model(config["model"], path)
    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"checkpoint {path} has no 'state_dict' mapping")
    try:
        state, kind = generator_state_dict(state_dict)
    except CheckpointError as error:
        raise CheckpointError(f"checkpoint {path}: {error}") from None
    return config, state, kind, checked


def _generator_entries(
    checkpoint: dict[str, Any], path: str | Path
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Validate a generator file's header; return ``({"model", "metadata"}, state_dict)``."""
    check_format(checkpoint, GENERATOR_FORMAT, GENERATOR_VERSION, path)
    model, state = checkpoint.get("model"), checkpoint.get("state_dict")
    if not isinstance(model, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: a {GENERATOR_FORMAT} file needs 'model' and 'state_dict' dicts")
    return {"model": model, "metadata": checkpoint.get("metadata") or {}}, state


def check_format(
    header: dict[str, Any],
    expected: str,
    version: int,
    path: str | Path,
    error: type[CheckpointError] = CheckpointError,
) -> None:
    """Refuse a file this project wrote in another format or format version (its ``format`` / ``version`` keys)."""
    found_format, found_version = header.get("format"), header.get("version")
    if found_format != expected:
        raise error(f"{path} has format {found_format!r}, expected {expected!r}")
    if found_version != version:
        raise error(
            f"{path} is a {expected} file of version {found_version!r}; this version of inpainting reads "
            f"version {version} only: re-export it with this version (python -m inpainting.export)"
        )


def save_generator(
    net: nn.Module, model_config: dict[str, Any], path: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Write the generator-only file (see the module docstring); atomically, tensors and plain data only.

    ``model_config`` is the network's ``_target_`` config (``conf/model/*.yaml`` resolved); ``metadata``
    plain data (source checkpoint, step, ...). Refuses a config that cannot rebuild ``net``.
    """
    config = dict(model_config)
    if "_target_" not in config:
        raise CheckpointError("model_config needs a _target_ naming the network class")
    check_finite(net.state_dict(), path)  # a file that would be refused on load is not written
    try:
        check_model_config(config)  # what a reader checks: a config that cannot be rebuilt is not written
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: this model config could not be loaded back: {error}") from error
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
            f".ckpt, a generator .pt, an .onnx file, or a TorchScript .ts with {TRUST_CODE_OPTION}=true), or create the default with "
            "`python -m inpainting.export ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt "
            f"format=generator output={path}` (or set ${DEFAULT_WEIGHTS_ENV})"
        )
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` that leaves either the old file or the complete new one, never a part.

    A temporary file beside the target, fsync, ``os.replace`` (atomic on POSIX and Windows), fsync of the folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # persist the rename itself (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
