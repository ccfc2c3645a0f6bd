"""Image inpainting with self-attention: Lightning + Hydra training, honest evaluation, and a tool for photos.

The short public API, for scripts and notebooks (none of it imports Lightning or Hydra)::

    from inpainting import Inpainter, load_model
    model = load_model()                      # the shipped default model, or load_model("run/last.ckpt")
    filled = Inpainter(model)(photo, mask)    # uint8 H x W x 3 photo, H x W mask (non-zero = missing)

Command lines: ``python -m inpainting.{train,evaluate,predict,export,demo}``; see README.md and
docs/architecture.md.
"""

from __future__ import annotations

from inpainting.evaluation.baselines import BASELINES, get_baseline
from inpainting.inference import Inpainter, LoadedModel, load_model
from inpainting.inference.checkpoint import load_generator, save_generator
from inpainting.models.registry import GENERATORS, build_network

__all__ = [
    "BASELINES",
    "GENERATORS",
    "Inpainter",
    "LoadedModel",
    "build_network",
    "get_baseline",
    "load_generator",
    "load_model",
    "save_generator",
]
