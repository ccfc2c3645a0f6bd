"""Small helpers shared by the networks and the benchmarks."""

from __future__ import annotations

from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters: the figure model tables and logs report."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
