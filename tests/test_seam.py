"""No seam: on smooth images the fill meets the known pixels without a ring, for a fresh and for the shipped net.

The error is measured where a seam shows: the 3-px ring just inside the hole (mean absolute error over RGB, in
/255 units). A smooth colour gradient and a flat colour, with an ellipse, a 12-px line, a box and a thin
scribble as holes, at a small and at a photo-like size.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from inpainting.inference import Inpainter, load_model
from inpainting.inference.inpainter import from_module
from inpainting.models.registry import build_network
from inpainting.resources import conf_dir

RING_LIMIT = 2.0  # /255


def gradient(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [40 + 180 * xx / width, 60 + 120 * yy / height, 200 - 100 * (xx + yy) / (height + width)], -1
    )
    return np.rint(image).astype(np.uint8)


def flat(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), (120, 160, 90), np.uint8)


def holes(height: int, width: int) -> dict[str, np.ndarray]:
    shapes = {name: np.zeros((height, width), np.uint8) for name in ("ellipse", "line", "box", "scribble")}
    cv2.ellipse(shapes["ellipse"], (width // 2, height // 2), (width // 6, height // 8), 20, 0, 360, 1, -1)
    cv2.line(shapes["line"], (width // 10, height // 5), (width * 9 // 10, height * 4 // 5), 1, 12)
    shapes["box"][height // 3 : height // 3 + height // 4, width // 5 : width // 5 + width // 3] = 1
    points = np.array([[width // 8, height // 2], [width // 3, height // 4], [width // 2, height * 3 // 4]])
    cv2.polylines(shapes["scribble"], [points.reshape(-1, 1, 2)], False, 1, 3)
    return shapes


def ring_error(result: np.ndarray, truth: np.ndarray, mask: np.ndarray, width: int = 3) -> float:
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=width)
    ring = (mask == 1) & (inner == 0)
    return float(np.abs(result.astype(np.float64) - truth.astype(np.float64)).mean(-1)[ring].mean())


def fresh_sa_unet() -> torch.nn.Module:
    """The network ``model=sa_unet`` builds, untrained."""
    torch.manual_seed(0)
    config = OmegaConf.to_container(OmegaConf.load(conf_dir() / "model" / "sa_unet.yaml"))
    return build_network(config).eval()


def worst_ring(inpaint, size: tuple[int, int]) -> tuple[float, str]:
    worst, where = 0.0, ""
    for image_name, image in (("gradient", gradient(*size)), ("flat", flat(*size))):
        for hole_name, mask in holes(*size).items():
            error = ring_error(inpaint(image, mask), image, mask)
            if error > worst:
                worst, where = error, f"{image_name}/{hole_name}"
    return worst, where


@pytest.mark.parametrize("size", [(96, 144), (600, 900)])
def test_untrained_network_leaves_no_ring(size):
    inpaint = Inpainter(from_module(fresh_sa_unet()))
    worst, where = worst_ring(inpaint, size)
    assert worst <= RING_LIMIT, f"ring error {worst:.2f}/255 on {where}"


@pytest.mark.parametrize("size", [(192, 256), (600, 900)])
def test_shipped_network_leaves_no_ring(size):
    inpaint = Inpainter(load_model(None))  # predict's default strategy, as a user runs it
    worst, where = worst_ring(inpaint, size)
    assert worst <= RING_LIMIT, f"ring error {worst:.2f}/255 on {where}"
