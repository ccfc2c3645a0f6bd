"""Gated convolution, contextual attention (known answers), and the DeepFill v2-style generator's contract."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inpainting.models.gated_ca import ContextualAttention, GatedCANet, GatedConv2d, contextual_attention
from inpainting.training.generator_step import generate


@pytest.mark.parametrize(("stride", "dilation", "expected"), [(1, 1, 16), (2, 1, 8), (1, 4, 16), (2, 2, 8)])
def test_gated_conv_shapes(stride: int, dilation: int, expected: int) -> None:
    layer = GatedConv2d(4, 6, 3, stride=stride, dilation=dilation)
    out = layer(torch.randn(2, 4, 16, 16))
    assert out.shape == (2, 6, expected, expected)


def test_gated_conv_is_activation_times_sigmoid_gate() -> None:
    torch.manual_seed(0)
    layer = GatedConv2d(3, 2, 3, activation="relu")
    x = torch.randn(1, 3, 5, 5)
    both = F.conv2d(x, layer.conv.weight, layer.conv.bias, padding=1)
    expected = F.relu(both[:, :2]) * torch.sigmoid(both[:, 2:])
    assert torch.allclose(layer(x), expected, atol=1e-6)


def _copy_problem(
    rate: int, size: int, block: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Random features; the hole (at ``t``) holds a noisy copy of the known block at ``s``."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(1, 8, size, size, generator=g)
    s, t = 2 * rate, size - block - 2 * rate
    features[..., t : t + block, t : t + block] = features[
        ..., s : s + block, s : s + block
    ] + 0.05 * torch.randn(1, 8, block, block, generator=g)
    hole = torch.zeros(1, 1, size, size)
    hole[..., t : t + block, t : t + block] = 1
    return features, hole, s, t


def test_contextual_attention_copies_the_matching_known_patch() -> None:
    """rate 1, the paper's scale 10: the hole's centre query attends to the matching known patch."""
    features, hole, s, t = _copy_problem(rate=1, size=16, block=3)
    out, attention = contextual_attention(
        features, hole, patch_size=3, rate=1, softmax_scale=10.0, return_attention=True
    )
    centre_query = (t + 1) * 16 + (t + 1)
    best_key = int(attention[0, centre_query].argmax())
    assert best_key == (s + 1) * 16 + (s + 1)
    assert attention[0, centre_query, best_key] > 0.9


def test_contextual_attention_rate_2_pastes_full_resolution_patches() -> None:
    """rate 2: matching on pooled features, pasting 4x4 raw patches; the hole's interior becomes the source's."""
    features, hole, s, t = _copy_problem(rate=2, size=40, block=12, seed=1)
    out = contextual_attention(features, hole, patch_size=3, rate=2, softmax_scale=50.0)
    # the central 4x4 pixels: every query pasting there has its whole 3x3 (pooled) window inside the hole
    source = features[..., s + 4 : s + 8, s + 4 : s + 8]
    filled = out[..., t + 4 : t + 8, t + 4 : t + 8]
    assert torch.allclose(filled, source, atol=1e-3)
    assert (out[..., t : t + 12, t : t + 12] - features[..., s : s + 12, s : s + 12]).abs().mean() < 0.1


def test_hole_patches_are_never_keys() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 4, 8, 8)
    hole = torch.zeros(2, 1, 8, 8)
    hole[..., 3:5, 3:5] = 1
    _, attention = contextual_attention(features, hole, rate=1, return_attention=True)
    touched = F.max_pool2d(hole, 3, stride=1, padding=1).flatten(1).bool()  # keys whose window meets the hole
    assert attention[:, :, touched[0]].abs().max() == 0
    assert torch.allclose(attention.sum(-1), torch.ones(2, 64))
    # a map that is all hole has no keys: zeros, and no NaN in the backward pass
    features.requires_grad_(True)
    out = contextual_attention(features, torch.ones(2, 1, 8, 8), rate=2)
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.isfinite(features.grad).all()


def test_contextual_attention_without_holes_and_sharp_softmax_is_identity() -> None:
    """Each query's best key is itself: unfold -> attention -> fold must rebuild the map (checks the overlap-add)."""
    torch.manual_seed(0)
    features = torch.randn(1, 6, 12, 16)
    out = contextual_attention(features, torch.zeros(1, 1, 12, 16), rate=2, softmax_scale=1000.0)
    assert torch.allclose(out, features, atol=1e-4)


def test_contextual_attention_module_pads_odd_sizes() -> None:
    module = ContextualAttention(rate=2)
    out = module(torch.randn(1, 4, 7, 9), torch.zeros(1, 1, 28, 36))
    assert out.shape == (1, 4, 7, 9)


@pytest.mark.parametrize("size", [(32, 32), (37, 45)])
@pytest.mark.parametrize("attention", [True, False])
def test_generator_contract_and_coarse_output(size: tuple[int, int], attention: bool) -> None:
    torch.manual_seed(0)
    net = GatedCANet(base_channels=8, contextual_attention=attention)
    image = torch.rand(2, 3, *size) * 2 - 1
    mask = (torch.rand(2, 1, *size) > 0.7).float()
    out = net(image * (1 - mask), mask)
    assert out.shape == image.shape and out.abs().max() <= 1
    step = generate(net, image, mask)  # what the training step runs: both stages, returned as values
    assert step.coarse is not None and step.coarse.shape == image.shape
    assert torch.allclose(step.output, out)
    assert torch.equal(step.composite[mask.expand_as(image) == 0], image[mask.expand_as(image) == 0])
    (step.output.mean() + step.coarse.mean()).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rate"):
        contextual_attention(torch.zeros(1, 1, 6, 6), torch.zeros(1, 1, 6, 6), rate=3)
    with pytest.raises(ValueError, match="multiples"):
        contextual_attention(torch.zeros(1, 1, 6, 7), torch.zeros(1, 1, 6, 7), rate=2)
    with pytest.raises(ValueError, match="activation"):
        GatedConv2d(1, 1, activation="tanh")
    with pytest.raises(ValueError, match="attention_rate"):
        GatedCANet(attention_rate=3)
