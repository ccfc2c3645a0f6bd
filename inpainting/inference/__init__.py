"""Inference without Lightning or Hydra: load any saved or exported generator, pad, crop/resize around holes.

``checkpoint``: the one safe reader of training checkpoints and generator files (EMA-aware).
``inpainter``: loaded models (generator, TorchScript, ONNX) and the strategies that apply them to a photo.
"""

from inpainting.inference.inpainter import (
    EXPORT_FORMATS,
    EXPORT_VERSION,
    METADATA_KEY,
    STRATEGIES,
    Box,
    ExportFormatError,
    Inpainter,
    LoadedModel,
    ModelFn,
    PaddedGenerator,
    check_export_header,
    check_pair,
    detect_kind,
    from_module,
    hole_boxes,
    load_model,
    pad_multiple,
    to_model_input,
    to_uint8,
)

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_VERSION",
    "METADATA_KEY",
    "STRATEGIES",
    "ModelFn",
    "ExportFormatError",
    "pad_multiple",
    "PaddedGenerator",
    "LoadedModel",
    "from_module",
    "detect_kind",
    "check_export_header",
    "load_model",
    "Box",
    "check_pair",
    "hole_boxes",
    "to_model_input",
    "to_uint8",
    "Inpainter",
]
