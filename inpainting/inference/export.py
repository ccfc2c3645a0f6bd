"""Exporters behind ``python -m inpainting.export``: torchscript, onnx and generator files, checked for parity.

Turns a training checkpoint (or a generator file) into something that ships:

* ``generator``: the network config + weights only (:func:`inpainting.inference.checkpoint.save_generator`), a few MB;
  what ``predict`` and the demo load by default.
* ``torchscript``: ``torch.jit.trace`` of :class:`inpainting.inference.PaddedGenerator`; runs without this
  package's Python code. Traced at a size where every padding branch is taken (and pads by 0 elsewhere), so the
  graph is valid at any H x W: checked after export against eager PyTorch at two other sizes.
* ``onnx``: ``torch.onnx.export(dynamo=True)`` with dynamic batch, height and width (opset 18), one
  self-contained file; checked with onnxruntime against PyTorch at two sizes when onnxruntime is installed.
  Global attention is exported as an ONNX ``Loop`` over blocks of query rows whose score matrix stays under
  ``EXPORT_SCORE_BUDGET`` elements (:func:`inpainting.models.attention.export_attention`): opset 18 has no attention
  op, and a plain MatMul + Softmax would build the whole ``queries x keys`` matrix, 7 GB per head for a
  2048x1536 photo's crop. Window attention stays MatMul + Softmax (64 x 64 scores per window).

Exported TorchScript/ONNX files carry a JSON header (format, version, model config, padding multiple), so
``predict`` recognises them and refuses files of another format version with a clear message.

A video network (:class:`~inpainting.models.sa_unet_video.SAUNetVideo`) exports the same way on ``B x T x 3 x H x W``
clips: batch, height and width stay dynamic, ``T`` is fixed to the clip length the checkpoint records (its
``data.clip_length``, a generator file's ``metadata.clip_length``; else 5) because the cross-frame position bias is
built for ``T`` frames. The header's ``frames`` holds that ``T`` (and ``metadata.clip_length`` the same), which is
how streaming video predict knows the window it must use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inpainting.errors import ConfigError
from inpainting.inference.checkpoint import CheckpointError, load_generator, read_checkpoint, save_generator
from inpainting.inference.inpainter import (
    EXPORT_FORMATS,
    EXPORT_VERSION,
    METADATA_KEY,
    PaddedGenerator,
    load_model,
    pad_multiple,
)
from inpainting.models.attention import EXPORT_SCORE_BUDGET, export_attention

log = logging.getLogger(__name__)

FORMATS = ("generator", "torchscript", "onnx")
SUFFIXES = {"generator": ".pt", "torchscript": ".ts", "onnx": ".onnx"}
ONNX_OPSET = 18
#: a traced/exported graph must match eager PyTorch to this (float32 rounding only)
PARITY_TOLERANCE = 1e-4
#: sizes the export is checked at, none of them the trace size
CHECK_SIZES = ((45, 61), (64, 96))


def source_metadata(path: Path) -> dict[str, Any]:
    """Plain facts about the checkpoint an export came from (step, epoch, file name)."""
    checkpoint = read_checkpoint(path)
    meta: dict[str, Any] = {"source": path.name, "torch": str(torch.__version__)}
    if "format" in checkpoint:  # re-exporting a generator file: keep its metadata
        meta = {**(checkpoint.get("metadata") or {}), **meta}
    for key in ("global_step", "epoch"):
        if isinstance(checkpoint.get(key), int):
            meta[key] = checkpoint[key]
    return meta


def trace_size(net: nn.Module) -> tuple[int, int]:
    """A size where every padding branch of the network is taken: the padding multiple times odd 5 and 11.

    After padding to the multiple ``M``, a level at ``1/2**i`` is ``M*k/2**i`` wide; with ``k`` odd it is
    window-aligned only where *every* size is, so a branch taken here is taken (by 0 pixels) for all sizes.
    """
    multiple = pad_multiple(net)
    return 5 * multiple - 3, 11 * multiple - 5  # odd sizes that pad up to 5M x 11M


def example_inputs(
    batch: int, height: int, width: int, seed: int = 0, frames: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A masked image and mask in the generator contract (random, for tracing and parity checks); ``frames``:
    a ``batch x frames x C x H x W`` clip for a video network."""
    g = torch.Generator().manual_seed(seed)
    lead = (batch,) if frames is None else (batch, frames)
    image = torch.rand(*lead, 3, height, width, generator=g) * 2 - 1
    mask = (torch.rand(*lead, 1, height, width, generator=g) > 0.7).float()
    return image * (1 - mask), mask


def clip_frames(net: nn.Module, config: dict[str, Any]) -> int | None:
    """``T`` an export of a video network is fixed to (the clip length ``config`` records, else 5); None for an
    image network."""
    from inpainting.inference.video import DEFAULT_WINDOW, is_video_network, recorded_clip_length

    if not is_video_network(net):
        return None
    return recorded_clip_length(config) or DEFAULT_WINDOW


def header(
    kind: str,
    model_config: dict[str, Any],
    multiple: int,
    metadata: dict[str, Any],
    frames: int | None = None,
) -> str:
    """The JSON header stored inside exported files (see inpainting.inference.check_export_header)."""
    fields: dict[str, Any] = {
        "format": EXPORT_FORMATS[kind],
        "version": EXPORT_VERSION,
        "model": model_config,
        "pad_multiple": multiple,
        "inputs": "masked_image N x 3 x H x W in [-1, 1] (holes zeroed), mask N x 1 x H x W (1 = missing)",
        "metadata": metadata,
    }
    if frames is not None:
        fields["inputs"] = (
            f"masked_image N x {frames} x 3 x H x W in [-1, 1] (holes zeroed), mask N x {frames} x 1 x H x W "
            "(1 = missing)"
        )
        fields["frames"] = frames
    return json.dumps(fields)


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; moved over it only when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def max_difference(reference: nn.Module, model: Any, sizes=CHECK_SIZES, frames: int | None = None) -> float:
    """Largest |eager - exported| over random inputs at ``sizes`` (NumPy in, NumPy out for ``model``);
    ``frames``: clips of that many frames (a video network).

    NaN-aware: a NaN or infinity on either side makes the result NaN (Python's ``max`` would drop a NaN, and
    NumPy's ``max`` of a NaN-free but infinite difference is inf), which no tolerance accepts.
    """
    worst = 0.0
    with torch.inference_mode():
        for i, (height, width) in enumerate(sizes):
            masked, mask = example_inputs(1, height, width, seed=i + 1, frames=frames)
            expected = reference(masked, mask).numpy()
            got = model(masked.numpy(), mask.numpy())
            if got.shape != expected.shape:
                raise CheckpointError(f"exported model returned {got.shape} for input {tuple(masked.shape)}")
            diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
            if not (np.isfinite(diff).all() and np.isfinite(expected).all()):
                return float("nan")
            worst = float(np.maximum(worst, diff.max()))
    return worst


def _check_parity(
    reference: nn.Module, path: Path, tolerance: float, name: str | None = None, frames: int | None = None
) -> float:
    """Refuse an export that differs from eager PyTorch (or is not finite); ``path`` is a file we just wrote."""
    name = name or path.name
    # the raw runner: LoadedModel itself refuses a non-finite output, with the temporary file's name
    diff = max_difference(reference, load_model(path, trust_code=True).run, frames=frames)
    if not diff <= tolerance:  # False for NaN too
        what = (
            "NaN or infinite outputs" if np.isnan(diff) else f"a difference of {diff:.3g} (> {tolerance:g})"
        )
        raise CheckpointError(
            f"the export to output={name} gives {what} against PyTorch at sizes {CHECK_SIZES}: not written"
        )
    log.info("export check: max |PyTorch - %s| = %.3g at sizes %s", name, diff, CHECK_SIZES)
    return diff


def export_torchscript(
    net: nn.Module,
    model_config: dict[str, Any],
    path: str | Path,
    metadata: dict[str, Any] | None = None,
    frames: int | None = None,
) -> Path:
    """Trace the padded generator and save it with its header; verified at sizes other than the trace size.

    ``frames``: a video network's clip length (None: the one ``metadata`` records, else 5), fixed in the trace."""
    path = Path(path)
    frames = frames or clip_frames(net, {"metadata": metadata or {}})
    padded = PaddedGenerator(net.eval()).eval()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # tracing warns about every Python bool taken from a shape: intended here, see trace_size
        warnings.simplefilter("ignore")
        inputs = example_inputs(1, *trace_size(net), frames=frames)
        traced = torch.jit.trace(padded, inputs, check_trace=False)
    extra = {METADATA_KEY: header("torchscript", model_config, padded.multiple, metadata or {}, frames)}
    with _atomic_path(path) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files=extra)
        _check_parity(padded, tmp, PARITY_TOLERANCE, str(path), frames)  # checked before it replaces ``path``
    return path


def export_onnx(
    net: nn.Module,
    model_config: dict[str, Any],
    path: str | Path,
    metadata: dict[str, Any] | None = None,
    check: bool = True,
    score_budget: int = EXPORT_SCORE_BUDGET,
    frames: int | None = None,
) -> Path:
    """Export with dynamic batch/height/width (dynamo exporter, opset 18), one file; checked with onnxruntime.

    ``frames``: a video network's clip length (None: the one ``metadata`` records, else 5), fixed in the graph.
    ``score_budget``: most attention scores (batch x heads x query rows x keys) global attention holds at once;
    0 exports plain MatMul + Softmax over the whole score matrix (the previous export, kept for comparison).
    """
    import onnx
    from torch.export import Dim

    from inpainting.models.attention_onnx import onnx_translations

    path = Path(path)
    frames = frames or clip_frames(net, {"metadata": metadata or {}})
    padded = PaddedGenerator(net.eval()).eval()
    # batch 2 in the example: torch.export specialises dimensions of size 1
    inputs = example_inputs(2, *trace_size(net), frames=frames)
    # Dim.DYNAMIC, not named Dims: export infers the relations itself (named Dims fail for the no-attention net)
    rank = 4 if frames is None else 5
    dims = {0: Dim.DYNAMIC, rank - 2: Dim.DYNAMIC, rank - 1: Dim.DYNAMIC}
    with (
        _atomic_path(path) as tmp,
        warnings.catch_warnings(),
        _quiet_onnx_logs(),
        export_attention(padded, score_budget),
    ):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            padded,
            inputs,
            str(tmp),
            dynamo=True,
            external_data=False,
            opset_version=ONNX_OPSET,
            input_names=["masked_image", "mask"],
            output_names=["output"],
            dynamic_shapes={"masked_image": dims, "mask": dims},
            custom_translation_table=onnx_translations(),
            verbose=False,
        )
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = (
            METADATA_KEY,
            header("onnx", model_config, padded.multiple, metadata or {}, frames),
        )
        onnx.save(proto, str(tmp))
        if check:  # before it replaces ``path``: a failed check leaves no file behind
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                log.warning("onnxruntime is not installed: %s was not checked against PyTorch", path)
            else:
                _check_parity(padded, tmp, PARITY_TOLERANCE, str(path), frames)
    return path


@contextlib.contextmanager
def _quiet_onnx_logs() -> Iterator[None]:
    """The dynamo exporter logs progress and torchvision notes at WARNING/INFO; keep the CLI's output readable."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "onnx_ir", "onnxscript")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def set_temporal_prior(net: nn.Module, model_config: dict[str, Any], value: bool | str) -> dict[str, Any]:
    """Give a video network another first guess (it has no parameters); returns the model config to record."""
    from inpainting.inference.video import is_video_network

    if not is_video_network(net):
        raise ConfigError(
            f"temporal_prior={value} applies to a video network (sa_unet_video), not to {type(net).__name__}"
        )
    try:
        net.set_temporal_prior(value)
    except ValueError as error:
        raise ConfigError(f"temporal_prior={value}: {error}") from None
    return {**model_config, "temporal_prior": value}


def export(
    ckpt_path: str | Path,
    fmt: str,
    output: str | Path | None = None,
    temporal_prior: bool | str | None = None,
) -> Path:
    """Export the generator in ``ckpt_path`` (training .ckpt or generator file) as ``fmt``; return the path.

    ``temporal_prior``: a video network's first guess in the export (None keeps the file's; see
    :meth:`~inpainting.models.sa_unet_video.SAUNetVideo.set_temporal_prior`)."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is not one of {', '.join(FORMATS)}")
    ckpt_path = Path(ckpt_path)
    net, config = load_generator(ckpt_path)
    if temporal_prior is not None:
        config = {**config, "model": set_temporal_prior(net, config["model"], temporal_prior)}
    metadata = {**source_metadata(ckpt_path), "weights": config["weights"]}  # "ema" | "raw"
    frames = clip_frames(net, config)
    if frames is not None:  # a video network: the clip length travels with every format
        metadata["clip_length"] = frames
    out = Path(output) if output else ckpt_path.with_suffix(SUFFIXES[fmt])
    if out.resolve() == ckpt_path.resolve():
        raise ConfigError(f"output={out} would overwrite the checkpoint it is exported from")
    if out.is_dir():
        raise IsADirectoryError(f"output={out} is a folder; give a file name, e.g. {out / ckpt_path.stem}")
    model_config = config["model"]
    if fmt != "generator" and getattr(net, "temporal_prior", None) == "flow":
        raise ConfigError(
            f"ckpt_path={ckpt_path}: a video network with model.temporal_prior=flow computes its first guess with "
            f"OpenCV's optical flow outside the network, so format={fmt} cannot hold it; export format=generator, "
            "or add temporal_prior=nearest (the still-camera guess, no parameters change) for an ONNX/TorchScript file"
        )
    try:
        if fmt == "generator":
            save_generator(net, model_config, out, metadata)
        elif fmt == "torchscript":
            export_torchscript(net, model_config, out, metadata, frames)
        else:
            export_onnx(net, model_config, out, metadata, frames=frames)
    except CheckpointError as error:  # the parity check: name the source too
        raise CheckpointError(f"ckpt_path={ckpt_path}: {error}") from None
    log.info("wrote %s (%s, %.1f MB)", out, fmt, out.stat().st_size / 1e6)
    return out
