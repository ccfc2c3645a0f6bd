"""Inference on real photos: load any exported model, pad, crop or resize around the holes, paste back.

Plain module (no Hydra, no Lightning): ``predict``, the demo, the notebook and the benchmark all call it.

* :func:`load_model` opens a training ``.ckpt``, a generator file (:func:`inpainting.inference.checkpoint.save_generator`),
  an ``.onnx`` file or, only with ``trust_code=True``, a TorchScript file (code: loading it runs its
  ``__setstate__``, every image its ``forward``), and returns a :class:`LoadedModel`, one callable for all of them:
  ``model(masked_image, mask) -> output``, float32 NumPy arrays ``N x 3 x H x W`` / ``N x 1 x H x W`` in the
  generator contract (image in [-1, 1], holes zeroed, mask 1 = missing), any H x W. An exported video network
  takes ``N x T x 3 x H x W`` / ``N x T x 1 x H x W`` clips of the ``T`` its header records (:attr:`LoadedModel.frames`).
* :class:`PaddedGenerator` pads every input to :func:`pad_multiple` (the network's downsampling times the
  key/value pooling of its global attention; the border is presented as a hole, as the network itself pads)
  and crops back. Exported files contain it, and eager PyTorch runs through it too, so every backend computes
  the same function at every size. It is also what makes export safe: ``adaptive_avg_pool2d`` exports to ONNX
  as a fixed-ratio ``AveragePool``, which is exact only when the map divides evenly (checked: at a bottleneck
  of 5 x 23 the unpadded export is silently wrong, ~1e-2; padded to the multiple it matches to ~1e-5).
* :class:`Inpainter` applies a model to a ``uint8`` photo of any size with a strategy for large ones:
  ``crop`` (default: each hole's bounding box plus ``margin`` of context, at native resolution; a crop
  larger than ``max_side`` is downscaled), ``resize`` (the whole photo downscaled to ``max_side``) or ``full``
  (the whole photo at native resolution). Results are pasted back in ``uint8`` into hole pixels only, so every
  known pixel comes back bit-identical.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inpainting.data.images import check_mask_size
from inpainting.errors import ConfigError, InputError, MissingExtraError
from inpainting.inference.checkpoint import (
    TRUST_CODE_OPTION,
    CheckpointError,
    check_format,
    is_torchscript,
    load_generator,
    resolve_weights,
)

log = logging.getLogger(__name__)

#: header of exported TorchScript / ONNX files (stored as JSON beside the graph)
EXPORT_FORMATS = {"torchscript": "inpainting-torchscript", "onnx": "inpainting-onnx"}
EXPORT_VERSION = 1
#: TorchScript ``_extra_files`` entry / ONNX ``metadata_props`` key holding that header
METADATA_KEY = "inpainting.json"
STRATEGIES = ("crop", "resize", "full")
#: how a model is applied unless told otherwise: the :class:`Inpainter` defaults, which the ``strategy`` /
#: ``max_side`` / ``margin`` options of conf/predict.yaml, conf/demo.yaml and evaluate.yaml's ``inference:``
#: repeat as literals (tests/test_evaluate_inference.py checks they agree)
INFERENCE_DEFAULTS: dict[str, Any] = {"strategy": "crop", "max_side": 1024, "margin": 128}

ModelFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ExportFormatError(CheckpointError):
    """An exported file without the inpainting header, or of another format version."""


# ----------------------------------------------------------------------------------------------------------
# padding
# ----------------------------------------------------------------------------------------------------------


def pad_multiple(net: nn.Module) -> int:
    """The side multiple every input is padded to: total downsampling x global attention's key pooling.

    ``SAUNet`` pads to ``size_multiple`` itself; pooled keys (``kv_pool``) additionally need the bottleneck to
    divide evenly so adaptive pooling is a plain strided average (same in eager, TorchScript and ONNX).
    """
    base = int(getattr(net, "size_multiple", 1))
    multiple = base
    for module in net.modules():
        pool = int(getattr(module, "kv_pool", 1) or 1)
        if pool > 1:
            multiple = math.lcm(multiple, base * pool)
    return multiple


class PaddedGenerator(nn.Module):
    """``net`` on inputs padded to ``multiple`` (zero image, mask 1 = a hole, like the net's own padding)."""

    def __init__(self, net: nn.Module, multiple: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.multiple = int(multiple or pad_multiple(net))

    def forward(self, masked_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        height, width = masked_image.shape[-2], masked_image.shape[-1]
        pad_h = (self.multiple - height % self.multiple) % self.multiple
        pad_w = (self.multiple - width % self.multiple) % self.multiple
        # Always pad (by 0 when aligned): no shape-dependent branch, so a trace or export stays valid at any size.
        masked_image = F.pad(masked_image, (0, pad_w, 0, pad_h))
        mask = F.pad(mask, (0, pad_w, 0, pad_h), value=1.0)
        return self.net(masked_image, mask)[..., :height, :width]  # 4-D images or 5-D clips


# ----------------------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """One model behind one call: ``model(masked_image, mask) -> output`` on float32 NCHW NumPy arrays."""

    run: ModelFn
    kind: str  # "pytorch" | "torchscript" | "onnx"
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> int | None:
        """``T`` of an exported video network (its graph takes clips of exactly ``T`` frames); None for images."""
        frames = self.info.get("frames")
        return frames if isinstance(frames, int) and frames >= 1 else None

    def __call__(self, masked_image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.frames is not None and (masked_image.ndim != 5 or masked_image.shape[1] != self.frames):
            got = f"{masked_image.shape[1]} frames" if masked_image.ndim == 5 else "a single image"
            raise InputError(
                f"{self.path or 'the model'} is a video model exported for clips of {self.frames} frames, got "
                f"{got}: use it on a video with window={self.frames} (or export the checkpoint again)"
            )
        try:
            output = self.run(masked_image, mask)
        except Exception as error:
            if is_out_of_memory(error):
                raise out_of_memory_error(self, masked_image.shape, error) from None
            raise
        if not np.isfinite(output).all():  # NaN would be written as black (or arbitrary) pixels, silently
            raise CheckpointError(
                f"{self.path or 'the model'} produced NaN or infinite values for a {masked_image.shape[-1]}x"
                f"{masked_image.shape[-2]} input: its weights are damaged or diverged"
            )
        return output

    def describe(self) -> str:
        name = (self.info.get("model") or {}).get("_target_", "?")
        return f"{self.kind} {name}" + (f" from {self.path}" if self.path else "")


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device}: CUDA is not available here (use device=cpu)")
    return device


#: how ONNX Runtime and PyTorch's CPU allocator word a failed allocation
_OUT_OF_MEMORY = re.compile(r"allocat|bad_alloc|out of memory", re.IGNORECASE)
_BACKENDS = {"pytorch": "PyTorch", "torchscript": "TorchScript", "onnx": "ONNX Runtime"}


def is_out_of_memory(error: BaseException) -> bool:
    """A model run that failed for want of memory (CUDA, the CPU allocator, ONNX Runtime's arena, NumPy)."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    from_backend = isinstance(error, RuntimeError) or type(error).__module__.startswith("onnxruntime")
    return from_backend and bool(_OUT_OF_MEMORY.search(str(error)))


def out_of_memory_error(model: LoadedModel, shape: tuple[int, ...], error: BaseException) -> InputError:
    """One line for a model run that did not fit in memory, saying which options make the run smaller."""
    detail = re.search(
        r"Failed to allocate[^.\n]*", str(error)
    )  # ONNX Runtime's line is long; this is its gist
    reason = (detail.group(0) if detail else first_line(error))[:200]
    source = f" running {model.path}" if model.path else ""
    return InputError(
        f"{_BACKENDS.get(model.kind, model.kind)} ran out of memory{source} on a {shape[-1]}x{shape[-2]} input "
        f"({reason}): set a smaller max_side (e.g. max_side=1024) or strategy=crop"
    )


def _torch_runner(module: nn.Module | torch.jit.ScriptModule, device: str) -> ModelFn:
    module = module.to(device).eval()

    @torch.inference_mode()
    def run(masked_image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(masked_image, dtype=np.float32)).to(device)
        m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).to(device)
        return module(x, m).float().cpu().numpy()

    return run


def from_module(net: nn.Module, device: str = "cpu", info: dict[str, Any] | None = None) -> LoadedModel:
    """Wrap an in-memory generator (padded, eval mode) as a :class:`LoadedModel`."""
    device = _resolve_device(device)
    padded = net if isinstance(net, PaddedGenerator) else PaddedGenerator(net)
    return LoadedModel(_torch_runner(padded, device), "pytorch", None, dict(info or {}))


def detect_kind(path: Path) -> str:
    """``onnx`` by suffix, ``torchscript`` when the zip archive holds TorchScript code, else ``checkpoint``.

    Recognising TorchScript only decides the refusal's wording: it is opened only with ``trust_code``.
    """
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if is_torchscript(path):
        return "torchscript"
    return "checkpoint"


def check_export_header(raw: str | bytes | None, kind: str, path: Path) -> dict[str, Any]:
    """Parse and validate the JSON header stored in an exported file."""
    expected = EXPORT_FORMATS[kind]
    if not raw:
        raise ExportFormatError(
            f"{path} has no inpainting header ({METADATA_KEY}): it was not written by python -m inpainting.export"
        )
    try:
        header = json.loads(raw)
    except (TypeError, ValueError) as error:
        raise ExportFormatError(f"{path}: unreadable inpainting header: {error}") from error
    check_format(header, expected, EXPORT_VERSION, path, ExportFormatError)
    return header


def _load_torchscript(path: Path, device: str) -> LoadedModel:
    extra = {METADATA_KEY: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as error:
        raise CheckpointError(f"cannot load TorchScript file {path}: {first_line(error)}") from error
    header = check_export_header(extra[METADATA_KEY], "torchscript", path)
    return LoadedModel(_torch_runner(module, device), "torchscript", path, header)


def _load_onnx(path: Path, device: str) -> LoadedModel:
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise MissingExtraError(
            f"{path} is an ONNX model: install onnxruntime (pip install 'inpainting[export]')"
        ) from error
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = (
        4  # a failed run is reported once, as our one-line error, not also in ORT's log
    )
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for bad files
        raise CheckpointError(f"cannot load ONNX file {path}: {first_line(error)}") from error
    header = check_export_header(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), "onnx", path)
    names = [i.name for i in session.get_inputs()]

    def run(masked_image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = dict(zip(names, (masked_image, mask), strict=True))
        feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feed.items()}
        try:
            return session.run(None, feed)[0]
        except Exception as error:  # onnxruntime's own exception types (RuntimeException, Fail, ...)
            if is_out_of_memory(error):
                raise  # LoadedModel words it, with the options that make the run smaller
            raise CheckpointError(f"ONNX Runtime failed running {path}: {first_line(error)}") from error

    return LoadedModel(run, "onnx", path, header)


def first_line(error: BaseException) -> str:
    """The first non-blank line of an error's text (ONNX Runtime's run many lines), or its type's name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__


def load_model(path: str | Path | None = None, device: str = "cpu", trust_code: bool = False) -> LoadedModel:
    """Open a training .ckpt, generator file, ONNX or TorchScript file (None: the default weights).

    ``trust_code``: allow a TorchScript file, which is code (it runs on load and on every image); without it
    such a file is refused whatever its name. Checkpoints and generator files are read with
    ``weights_only=True`` and ONNX runs no Python, so they need no trust.
    """
    path = resolve_weights(path)
    device = _resolve_device(device)
    kind = detect_kind(path)
    if kind == "onnx":
        return _load_onnx(path, device)
    if kind == "torchscript":
        if not trust_code:
            raise CheckpointError(
                f"{path} is a TorchScript file, which runs the code it carries when loaded: refusing it; set "
                f"{TRUST_CODE_OPTION}=true only if you trust where it came from (or use its generator or ONNX "
                "export, which run no code from the file)"
            )
        return _load_torchscript(path, device)
    net, config = load_generator(path)
    model = from_module(net, device, {"model": config["model"], "metadata": config.get("metadata", {})})
    model.path = path
    return model


# ----------------------------------------------------------------------------------------------------------
# applying a model to a photo
# ----------------------------------------------------------------------------------------------------------


Box = tuple[int, int, int, int]  # top, left, bottom, right (exclusive)


def check_pair(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Validate ``uint8 H x W x 3`` + ``H x W`` mask; return the boolean hole map."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 H x W x 3, got {image.dtype} {image.shape}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise ValueError(f"mask must be H x W, got shape {mask.shape}")
    check_mask_size(image, mask)
    return mask != 0


def hole_boxes(holes: np.ndarray, margin: int) -> list[Box]:
    """Bounding boxes of the hole components grown by ``margin`` (clipped), merged until none overlap."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=8)
    height, width = holes.shape
    boxes = []
    for x, y, w, h, _area in stats[1:count]:
        boxes.append(
            (max(0, y - margin), max(0, x - margin), min(height, y + h + margin), min(width, x + w + margin))
        )
    merged = True
    while merged:
        merged = False
        out: list[Box] = []
        for box in boxes:
            for i, other in enumerate(out):
                if box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]:
                    out[i] = (
                        min(box[0], other[0]),
                        min(box[1], other[1]),
                        max(box[2], other[2]),
                        max(box[3], other[3]),
                    )
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return sorted(boxes)


def to_model_input(images: np.ndarray, holes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N x] H x W x 3`` + bool holes ``[N x] H x W`` -> the generator contract's
    ``(masked_image N x 3 x H x W in [-1, 1], mask N x 1 x H x W)``; a single image becomes a batch of one."""
    if images.ndim == 3:
        images, holes = images[None], holes[None]
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
    m = holes.astype(np.float32)[:, None]
    return x * (1.0 - m), m


def to_uint8(output: np.ndarray) -> np.ndarray:
    """Generator output ``N x 3 x H x W`` in [-1, 1] -> uint8 ``N x H x W x 3``."""
    out = np.clip(output, -1.0, 1.0).transpose(0, 2, 3, 1)
    return np.round((out + 1.0) * 127.5).astype(np.uint8)


class Inpainter:
    """Fill the holes of uint8 photos with a model, any size; known pixels are never touched.

    Args:
        model: a :class:`LoadedModel` or any ``(masked_image, mask) -> output`` NumPy callable.
        strategy: ``crop`` (default), ``resize`` or ``full`` (see the module docstring).
        max_side: the longest side the model is run at; larger crops/photos are downscaled (INTER_AREA, a hole
            pixel anywhere in a low-resolution cell makes it a hole), filled, upscaled (bicubic) and pasted into the
            hole pixels only. ``0`` / None: never downscale.
        margin: ``crop``: pixels of context around each hole's bounding box.
    """

    def __init__(
        self,
        model: ModelFn,
        strategy: str = INFERENCE_DEFAULTS["strategy"],
        max_side: int | None = INFERENCE_DEFAULTS["max_side"],
        margin: int = INFERENCE_DEFAULTS["margin"],
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy={strategy!r} is not one of {', '.join(STRATEGIES)}")
        if margin < 0:
            raise ConfigError(f"margin must be >= 0, got {margin}")
        if max_side is not None and max_side < 0:
            raise ConfigError(f"max_side must be >= 0 (0 = never downscale), got {max_side}")
        self.model = model
        self.strategy = strategy
        self.max_side = max_side or None
        self.margin = int(margin)

    def describe(self) -> str:
        """How the model is applied, for table headers."""
        limit = self.max_side or "none"
        if self.strategy == "crop":
            return f"predict's path: strategy=crop, margin={self.margin}, max_side={limit}"
        return f"predict's path: strategy={self.strategy}, max_side={limit}"

    def regions(self, holes: np.ndarray) -> list[Box]:
        """The boxes the model runs on, each pasted back independently."""
        height, width = holes.shape
        if self.strategy == "crop":
            return hole_boxes(holes, self.margin)
        return [(0, 0, height, width)]

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``uint8 H x W x 3`` photo + ``H x W`` mask (nonzero = missing) -> the filled uint8 photo."""
        holes = check_pair(image, mask)
        if not holes.any():
            log.info("the mask has no hole pixels: returning the image unchanged")
            return image.copy()
        result = image.copy()
        for top, left, bottom, right in self.regions(holes):
            crop_holes = holes[top:bottom, left:right]
            if not crop_holes.any():
                continue
            filled = self._fill(image[top:bottom, left:right], crop_holes)
            view = result[top:bottom, left:right]
            view[crop_holes] = filled[crop_holes]
        return result

    def _fill(self, image: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """Run the model on one region, downscaling it first when it is larger than ``max_side``."""
        height, width = holes.shape
        limit = self.max_side if self.strategy != "full" else None
        if limit is None or max(height, width) <= limit:
            return to_uint8(self.model(*to_model_input(image, holes)))[0]
        scale = limit / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))  # cv2: (w, h)
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small_holes = cv2.resize(holes.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        if not small_holes.any():  # cannot happen with INTER_AREA coverage, but never run on nothing
            small_holes = cv2.resize(holes.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        out = to_uint8(self.model(*to_model_input(small, small_holes)))[0]
        composite = np.where(small_holes[..., None], out, small)
        log.debug("region %dx%d run at %dx%d", width, height, *size)
        return cv2.resize(composite, (width, height), interpolation=cv2.INTER_CUBIC)

    def fill_batch(self, images: np.ndarray, masks: np.ndarray, batch_size: int) -> np.ndarray:
        """What :meth:`__call__` returns for each pair, with equal-size crops run through the model together.

        ``images``: uint8 ``N x H x W x 3``; ``masks``: ``N x H x W`` (nonzero = missing). The regions, crops,
        conversion and paste-back are :meth:`__call__`'s own; only the model calls are grouped, ``batch_size``
        crops of one shape at a time (evaluation runs thousands of pairs). An image with a region larger than
        ``max_side`` (downscaled first) goes through :meth:`__call__` as it is.
        """
        results = images.copy()
        limit = self.max_side if self.strategy != "full" else None
        groups: dict[tuple[int, int], list[tuple[int, Box, np.ndarray]]] = defaultdict(list)
        for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
            holes = mask != 0
            if not holes.any():
                continue
            boxes = [box for box in self.regions(holes) if holes[box[0] : box[2], box[1] : box[3]].any()]
            if limit is not None and any(max(b - t, r - left) > limit for t, left, b, r in boxes):
                results[i] = self(image, mask)
                continue
            for box in boxes:
                crop_holes = holes[box[0] : box[2], box[1] : box[3]]
                groups[crop_holes.shape].append((i, box, crop_holes))
        for jobs in groups.values():
            for start in range(0, len(jobs), batch_size):
                _run_chunk(self.model, images, results, jobs[start : start + batch_size])
        return results


def _run_chunk(
    model: ModelFn, images: np.ndarray, results: np.ndarray, chunk: Sequence[tuple[int, Box, np.ndarray]]
) -> None:
    """One model call on equal-size crops ``(image index, box, hole map)``; pasted into ``results``' holes."""
    crops = np.stack([images[i][t:b, left:r] for i, (t, left, b, r), _ in chunk])
    holes = np.stack([h for _, _, h in chunk])
    filled = to_uint8(model(*to_model_input(crops, holes)))
    for (i, (t, left, b, r), crop_holes), out in zip(chunk, filled, strict=True):
        view = results[i][t:b, left:r]
        view[crop_holes] = out[crop_holes]
