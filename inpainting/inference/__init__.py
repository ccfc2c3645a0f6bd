"""Inference without Lightning or Hydra: load any saved or exported generator, pad, crop/resize around holes.

``checkpoint``: the one safe reader of training checkpoints and generator files (EMA-aware).
``inpainter``: loaded models (generator, TorchScript, ONNX) and the strategies that apply them to a photo.
Names load their module on first use.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "inpainter": ["Inpainter", "LoadedModel", "load_model"],
        "checkpoint": ["load_generator", "save_generator"],
    },
)
