"""Partial convolution (Liu et al. 2018): re-normalisation, bias, mask update, and the PConv U-Net contract."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inpainting.models.pconv_unet import PartialConv2d, PConvUNet


def _ones_pconv(in_channels: int = 1, padding: int = 0, bias: float = 0.5) -> PartialConv2d:
    layer = PartialConv2d(in_channels, 1, 3, padding=padding)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
        layer.bias.fill_(bias)
    return layer


def test_hand_computed_scaling_bias_and_mask_update() -> None:
    layer = _ones_pconv()
    x = torch.arange(9.0).view(1, 1, 3, 3)
    valid = torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]]).view(1, 1, 3, 3)
    out, new_valid = layer(x, valid)
    # sum over valid pixels (0 + 2 + 4 + 8) times sum(1)/sum(M) = 9/4, plus the bias
    assert out.item() == pytest.approx(14 * 9 / 4 + 0.5)
    assert new_valid.item() == 1.0
    out, new_valid = layer(x, torch.zeros_like(valid))  # nothing valid: output 0 (no bias), still a hole
    assert out.item() == 0.0 and new_valid.item() == 0.0


def test_per_channel_masks_count_valid_channel_pixel_pairs() -> None:
    layer = _ones_pconv(in_channels=2, bias=0.0)
    x = torch.stack([torch.full((3, 3), 1.0), torch.full((3, 3), 100.0)]).unsqueeze(0)
    valid = torch.stack([torch.ones(3, 3), torch.zeros(3, 3)]).unsqueeze(0)  # channel 1 entirely missing
    out, new_valid = layer(x, valid)
    # 9 valid pairs out of 18: scale 2; channel 1's values never count
    assert out.item() == pytest.approx(9 * 1.0 * 2)
    assert new_valid.shape == (1, 1, 1, 1) and new_valid.item() == 1.0


def test_zero_padding_counts_as_missing() -> None:
    layer = _ones_pconv(padding=1, bias=0.0)
    x = torch.ones(1, 1, 3, 3)
    out, new_valid = layer(x, torch.ones_like(x))
    # every window re-normalises to the 9-pixel sum of ones, corners (4 in-image pixels) included
    assert torch.allclose(out, torch.full_like(out, 9.0))
    assert torch.equal(new_valid, torch.ones_like(x))


def test_fully_valid_mask_is_an_ordinary_convolution() -> None:
    torch.manual_seed(0)
    layer = PartialConv2d(3, 5, 3, padding=0)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 3, 9, 11)
    out, new_valid = layer(x, torch.ones(2, 1, 9, 11))
    expected = F.conv2d(x, layer.conv.weight, layer.bias)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.equal(new_valid, torch.ones(2, 1, 7, 9))
    # with padding, the interior (windows that never touch the padding) is the ordinary convolution too
    padded = PartialConv2d(3, 5, 3, padding=1)
    padded.load_state_dict(layer.state_dict())
    out, _ = padded(x, torch.ones(2, 1, 9, 11))
    assert torch.allclose(out[..., 1:-1, 1:-1], expected, atol=1e-5)


def test_holes_shrink_layer_by_layer() -> None:
    layer = PartialConv2d(1, 1, 3)
    valid = torch.ones(1, 1, 9, 9)
    valid[..., 2:7, 2:7] = 0  # a 5x5 hole
    _, valid1 = layer(torch.randn(1, 1, 9, 9), valid)
    assert valid1.sum() == 81 - 9  # 3x3 hole left
    _, valid2 = layer(torch.randn(1, 1, 9, 9), valid1)
    assert valid2.sum() == 81 - 1


@pytest.mark.parametrize("size", [(32, 32), (37, 45)])
def test_pconv_unet_contract_any_size(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = PConvUNet(base_channels=8)
    image = torch.rand(2, 3, *size) * 2 - 1
    mask = (torch.rand(2, 1, *size) > 0.7).float()
    out = net(image * (1 - mask), mask)
    assert out.shape == image.shape
    assert out.abs().max() <= 1.0
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_pconv_unet_ignores_the_content_of_holes() -> None:
    """Partial convolutions multiply inputs by the mask: what the hole pixels hold cannot matter."""
    torch.manual_seed(0)
    net = PConvUNet(base_channels=8).eval()
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:20, 10:24] = 1
    noisy = image * (1 - mask) + torch.randn_like(image) * mask
    with torch.no_grad():
        assert torch.allclose(net(image * (1 - mask), mask), net(noisy, mask), atol=1e-6)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="norm"):
        PConvUNet(norm="layer")
    with pytest.raises(ValueError, match="kernel_sizes"):
        PConvUNet(kernel_sizes=[4])
    with pytest.raises(ValueError, match="1-channel mask"):
        PConvUNet(base_channels=8)(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="mask must have"):
        PartialConv2d(3, 4, 3)(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 8))
