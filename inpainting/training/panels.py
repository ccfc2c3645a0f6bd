"""Picture panels: masked input | output | composite | ground truth, one row per image.

Written by hand because torchvision (whose ``make_grid`` does this) cannot be installed beside
the CPU torch build (PyPI's torchvision needs its matching torch); it is a few lines of tensor concatenation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

PANEL_COLUMNS = ("masked input", "output", "composite", "ground truth")


def to_unit_range(image: Tensor) -> Tensor:
    """Map the [-1, 1] network range to the [0, 1] range metrics and pictures use."""
    return ((image + 1.0) / 2.0).clamp(0.0, 1.0)


def inpainting_panel(
    image: Tensor, mask: Tensor, output: Tensor, composite: Tensor, max_rows: int = 4
) -> np.ndarray:
    """Build an ``rows*H x 4*W x 3`` uint8 panel; holes in the input are shown white. A clip's frames
    (``B x T x C x H x W``) are rows of their own, the first clip's first."""
    image, mask, output, composite = (
        t.flatten(0, 1) if t.dim() == 5 else t for t in (image, mask, output, composite)
    )
    rows = min(max_rows, image.shape[0])
    image, mask, output, composite = (
        t[:rows].detach().float().cpu() for t in (image, mask, output, composite)
    )
    masked = to_unit_range(image) * (1.0 - mask) + mask
    columns = [masked, to_unit_range(output), to_unit_range(composite), to_unit_range(image)]
    grid = torch.cat([torch.cat(list(column), dim=1) for column in columns], dim=2)  # 3 x rows*H x 4*W
    return (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
