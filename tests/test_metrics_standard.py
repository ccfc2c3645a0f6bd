"""Standard FID and LPIPS: formulas against direct numpy/scipy computations, the networks against their
reference layouts, and weight lookup, all offline on weight files the tests write with the real names and shapes."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from scipy import linalg

from inpainting.evaluation.inception import FIDInceptionV3, resize_bilinear_tf1
from inpainting.evaluation.lpips import BACKBONE_FILES, CHANNELS, LPIPS, backbone_features, head_weights_path
from inpainting.evaluation.metrics import fid_from_features, frechet_distance
from inpainting.evaluation.standard import (
    INCEPTION_FILES,
    WEIGHTS_ENV,
    MissingWeightsError,
    find_weights,
    load_standard_metrics,
)


def write_backbone(net: str, path: Path, seed: int = 0) -> Path:
    """A torchvision-format state dict (``features.N.weight``/``bias``) with random values."""
    torch.manual_seed(seed)
    features = backbone_features(net)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


@pytest.fixture
def weight_dir(tmp_path, monkeypatch):
    """Empty torch hub cache and $INPAINTING_METRIC_WEIGHTS pointing at a folder the test fills."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    return folder


# ---------------------------------------------------------------------------------------------- Fréchet distance


def scipy_frechet(mu1, s1, mu2, s2) -> float:
    """pytorch-fid's formula: ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrtm(S1 S2)``."""
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def random_gaussian(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(size=(dim, dim))
    return rng.normal(size=dim), a @ a.T + 0.1 * np.eye(dim)


def test_frechet_distance_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(0)
    for dim in (1, 3, 16):
        (mu1, s1), (mu2, s2) = random_gaussian(rng, dim), random_gaussian(rng, dim)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-8)


def test_frechet_distance_closed_forms():
    # diagonal covariances: sum (m1 - m2)^2 + (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    s = random_gaussian(np.random.default_rng(1), 5)[1]
    assert frechet_distance(mu1[:1], s[:1, :1], mu1[:1], s[:1, :1]) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_agrees_with_torchmetrics():
    from torchmetrics.image.fid import _compute_fid

    rng = np.random.default_rng(2)
    (mu1, s1), (mu2, s2) = random_gaussian(rng, 6), random_gaussian(rng, 6)
    reference = _compute_fid(*(torch.from_numpy(x) for x in (mu1, s1, mu2, s2)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(float(reference), rel=1e-7)


def test_fid_from_features_uses_sample_mean_and_unbiased_covariance():
    rng = np.random.default_rng(3)
    fake, real = rng.normal(size=(40, 4)), rng.normal(1.0, 2.0, size=(30, 4))
    mu1, mu2 = fake.sum(0) / 40, real.sum(0) / 30
    s1 = (fake - mu1).T @ (fake - mu1) / 39
    s2 = (real - mu2).T @ (real - mu2) / 29
    assert fid_from_features(fake, real) == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-8)
    assert np.isnan(fid_from_features(fake[:1], real))


@pytest.mark.parametrize(("n", "m"), [(5, 7), (12, 3), (2, 2)])
def test_fid_from_few_samples_equals_the_covariance_formula(n, m):
    """Fewer samples than dimensions (the usual case at D = 2048): the n x m SVD route gives the same number."""
    rng = np.random.default_rng(n * m)
    fake, real = rng.normal(size=(n, 16)), rng.normal(0.5, 1.5, size=(m, 16))
    mu1, mu2 = fake.mean(0), real.mean(0)
    s1, s2 = np.cov(fake, rowvar=False), np.cov(real, rowvar=False)
    assert fid_from_features(fake, real) == pytest.approx(
        frechet_distance(mu1, s1, mu2, s2), rel=1e-7, abs=1e-9
    )
    assert fid_from_features(fake, real) == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-5)


# ---------------------------------------------------------------------------------------------- Inception


def tf1_resize_reference(x: np.ndarray, size: int) -> np.ndarray:
    """TF 1.x resize_bilinear(align_corners=False) written out per pixel: source = i * in / out, no offset."""
    h, w = x.shape
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            y, xx = i * h / size, j * w / size
            y0, x0 = int(np.floor(y)), int(np.floor(xx))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            dy, dx = y - y0, xx - x0
            top = x[y0, x0] * (1 - dx) + x[y0, x1] * dx
            bottom = x[y1, x0] * (1 - dx) + x[y1, x1] * dx
            out[i, j] = top * (1 - dy) + bottom * dy
    return out


@pytest.mark.parametrize(("shape", "size"), [((5, 7), 11), ((9, 6), 4), ((8, 8), 8)])
def test_tf1_bilinear_resize_known_answer(shape, size):
    x = np.random.default_rng(0).uniform(0, 255, size=shape)
    ours = resize_bilinear_tf1(torch.from_numpy(x)[None, None].float(), size)[0, 0].double().numpy()
    np.testing.assert_allclose(ours, tf1_resize_reference(x, size), atol=1e-3)


def test_inception_loads_the_published_key_layout_strictly(tmp_path):
    net = FIDInceptionV3()
    state = net.state_dict()
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert state["fc.weight"].shape == (1008, 2048)
    assert sum(v.numel() for k, v in state.items() if "num_batches" not in k) == 23_885_392
    images = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8)
    features = net(images)
    assert features.shape == (2, 2048) and features.dtype == torch.float32
    with pytest.raises(ValueError, match="uint8"):
        net(images.float())


# ---------------------------------------------------------------------------------------------- LPIPS


def numpy_lpips(model: LPIPS, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Normalise each position's channel vector, square the difference, weight channels, average, sum layers."""
    total = np.zeros(x.shape[0])
    for lin, fx, fy in zip(model.lins, model.layers(x), model.layers(y), strict=True):
        a, b = fx.double().numpy(), fy.double().numpy()
        a = a / (np.sqrt((a**2).sum(axis=1, keepdims=True)) + 1e-10)
        b = b / (np.sqrt((b**2).sum(axis=1, keepdims=True)) + 1e-10)
        w = lin.weight.double().numpy()[0, :, 0, 0]
        total += np.einsum("bchw,c->bhw", (a - b) ** 2, w).mean(axis=(1, 2))
    return total


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_normalise_square_average_known_answer(net, tmp_path):
    model = LPIPS(net, write_backbone(net, tmp_path / BACKBONE_FILES[net]))
    heads = torch.load(head_weights_path(net), map_location="cpu", weights_only=True)
    assert torch.equal(model.lins[0].weight, heads["lin0.model.1.weight"])  # the v0.1 heads, not random
    assert [lin.weight.shape[1] for lin in model.lins] == list(CHANNELS[net])
    x, y = torch.rand(3, 3, 48, 48), torch.rand(3, 3, 48, 48)
    distances = model(x, y)
    np.testing.assert_allclose(distances.double().numpy(), numpy_lpips(model, x, y), rtol=1e-4)
    assert torch.all(distances > 0) and torch.allclose(model(x, x), torch.zeros(3), atol=1e-6)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_torchmetrics_reference_on_the_same_backbone(net, tmp_path):
    """torchmetrics' _LPIPS (the reference code) builds its backbone through torchvision; give it ours."""
    from torchmetrics.functional.image import lpips as tm_lpips

    path = write_backbone(net, tmp_path / BACKBONE_FILES[net], seed=1)
    ours = LPIPS(net, path)

    def features(name: str, pretrained: bool = False) -> torch.nn.Sequential:
        seq = backbone_features(net)
        seq.load_state_dict(ours.features.state_dict())
        return seq

    with mock.patch.object(tm_lpips, "_get_tv_model_features", features):
        reference = tm_lpips._LPIPS(pretrained=True, net=net, pnet_rand=True, use_dropout=True).eval()
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    expected = reference(x, y, normalize=True).flatten()
    torch.testing.assert_close(ours(x, y), expected, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------- weights


def test_find_weights_order_explicit_env_then_hub_cache(tmp_path, weight_dir):
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True)
    name = INCEPTION_FILES[1]
    (hub / name).write_bytes(b"x")
    assert find_weights(INCEPTION_FILES, None, "FID") == hub / name
    (weight_dir / INCEPTION_FILES[0]).write_bytes(b"x")
    assert find_weights(INCEPTION_FILES, None, "FID") == weight_dir / INCEPTION_FILES[0]
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    assert find_weights(INCEPTION_FILES, explicit, "FID") == explicit
    with pytest.raises(MissingWeightsError, match="nope.pth not found"):
        find_weights(INCEPTION_FILES, tmp_path / "nope.pth", "FID")


def test_missing_weights_auto_leaves_out_true_stops_with_one_line(weight_dir):
    assert load_standard_metrics("auto", "auto").empty
    assert load_standard_metrics(False, False).empty
    with pytest.raises(MissingWeightsError) as info:
        load_standard_metrics(True, False)
    message = str(info.value)
    assert "\n" not in message
    assert INCEPTION_FILES[0] in message and str(weight_dir) in message and "hub/checkpoints" in message
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        write_backbone("alex", weight_dir / BACKBONE_FILES["alex"])
        load_standard_metrics(False, True)


def test_found_weights_load_and_wrong_file_is_refused(weight_dir):
    torch.save(FIDInceptionV3().state_dict(), weight_dir / INCEPTION_FILES[0])
    for net in ("alex", "vgg"):
        write_backbone(net, weight_dir / BACKBONE_FILES[net])
    metrics = load_standard_metrics("auto", "auto")
    assert metrics.inception is not None and set(metrics.lpips) == {"alex", "vgg"}
    assert set(metrics.sources) == {"fid", "lpips_alex", "lpips_vgg"}
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    assert metrics.inception_features(images, batch_size=2).shape == (3, 2048)
    torch.save({"conv.weight": torch.zeros(1)}, weight_dir / INCEPTION_FILES[0])
    with pytest.raises(MissingWeightsError, match="not the FID Inception state dict"):
        load_standard_metrics("auto", False)
