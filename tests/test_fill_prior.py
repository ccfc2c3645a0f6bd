"""Push-pull fill prior: what it fills, what it keeps, and how sa_unet uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inpainting.evaluation.baselines import get_baseline
from inpainting.models.fill_prior import push_pull_fill
from inpainting.models.sa_unet import SAUNet


def _hole(height: int, width: int, box: tuple[int, int, int, int]) -> torch.Tensor:
    mask = torch.zeros(1, 1, height, width, dtype=torch.float64)
    top, left, bottom, right = box
    mask[..., top:bottom, left:right] = 1.0
    return mask


def test_known_pixels_are_kept_and_a_constant_image_is_filled_with_its_colour() -> None:
    image = torch.rand(2, 3, 37, 53, dtype=torch.float64)
    mask = _hole(37, 53, (5, 9, 30, 40)).expand(2, 1, 37, 53)
    filled = push_pull_fill(image * (1 - mask), mask)
    known = mask.expand_as(image) == 0
    torch.testing.assert_close(filled[known], image[known])

    constant = torch.full((1, 3, 37, 53), 0.3, dtype=torch.float64) * torch.tensor([1.0, -2.0, 0.5]).view(
        1, 3, 1, 1
    )
    filled = push_pull_fill(constant * (1 - mask[:1]), mask[:1])
    torch.testing.assert_close(filled, constant)


def test_a_hole_between_two_colours_is_filled_between_them_and_follows_the_nearer_side() -> None:
    image = torch.zeros(1, 1, 32, 64, dtype=torch.float64)
    image[..., 32:] = 1.0  # left half 0, right half 1
    mask = _hole(32, 64, (8, 16, 24, 48))
    filled = push_pull_fill(image * (1 - mask), mask)[0, 0, 16]
    assert float(filled.min()) >= 0.0 and float(filled.max()) <= 1.0
    assert float(filled[18]) < 0.5 < float(filled[46])  # near each edge the fill takes that edge's colour
    assert bool((filled[16:48].diff() >= -1e-12).all())  # and rises monotonically across the hole


def test_a_hole_wider_than_the_pyramid_takes_the_mean_known_colour_and_nothing_is_nan() -> None:
    image = torch.full((1, 3, 64, 64), 0.25, dtype=torch.float64)
    image[..., :4, :] = 0.75
    mask = torch.ones(1, 1, 64, 64, dtype=torch.float64)
    mask[..., :8, :] = 0.0
    filled = push_pull_fill(image * (1 - mask), mask, levels=1)
    assert torch.isfinite(filled).all()
    torch.testing.assert_close(filled[..., 40, 40], torch.full((1, 3), 0.5, dtype=torch.float64))
    everything_missing = push_pull_fill(image, torch.ones(1, 1, 64, 64, dtype=torch.float64))
    assert torch.equal(everything_missing, torch.zeros_like(image))


def test_bad_arguments_name_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="levels"):
        push_pull_fill(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8), levels=0)
    with pytest.raises(ValueError, match="B x 1 x H x W"):
        push_pull_fill(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_untrained_fill_prior_net_returns_the_push_pull_fill_and_learns_a_correction() -> None:
    torch.manual_seed(0)
    net = SAUNet(base_channels=8, num_heads=2, fill_prior=True)
    image = torch.rand(2, 3, 32, 48) * 2 - 1
    mask = _hole(32, 48, (4, 6, 20, 30)).float().expand(2, 1, 32, 48)
    masked = image * (1 - mask)
    out = net(masked, mask)
    torch.testing.assert_close(out, push_pull_fill(masked, mask).clamp(-1, 1), atol=1e-6, rtol=0)

    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):  # the zero head gets a gradient first, then the body behind it
        optimizer.zero_grad()
        ((net(masked, mask) - image).abs() * mask).mean().backward()
        optimizer.step()
    assert net.head.weight.abs().sum() > 0 and net.stem.weight.grad.abs().sum() > 0
    assert not torch.allclose(net(masked, mask), out)


def test_fill_prior_needs_matching_channels() -> None:
    with pytest.raises(ValueError, match="fill_prior"):
        SAUNet(in_channels=4, out_channels=1, base_channels=8, num_heads=2, fill_prior=True)


def test_push_pull_baseline_keeps_known_pixels_and_fills_a_flat_photo_exactly() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    mask[10:30, 5:45] = 1
    out = get_baseline("push_pull")(image, mask)
    assert np.array_equal(out[mask == 0], image[mask == 0])
    flat = np.full((40, 50, 3), (200, 30, 90), np.uint8)
    assert np.array_equal(get_baseline("push_pull")(flat, mask), flat)
