"""Metrics: agreement with scikit-image, bucket edges, DDP-style accumulation, confidence intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from inpainting.evaluation.metrics import (
    AREA_BUCKETS,
    AREA_LABELS,
    MAX_PSNR,
    BucketedImageMetrics,
    area_bucket,
    area_bucket_index,
    image_metrics,
    mean_ci,
)


def _pair(b: int = 3, h: int = 32, w: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, 3, h, w, generator=g)
    pred = (target + 0.1 * torch.randn(b, 3, h, w, generator=g)).clamp(0, 1)
    return pred, target


def _mask_with_fraction(fractions: list[float], h: int = 20, w: int = 50) -> torch.Tensor:
    """Masks whose hole count is round(f * h * w), so 0.1 gives exactly 10% (100 of 1000 pixels)."""
    mask = torch.zeros(len(fractions), 1, h, w)
    for i, f in enumerate(fractions):
        mask[i].view(-1)[: round(f * h * w)] = 1
    return mask


def test_psnr_ssim_equal_scikit_image() -> None:
    pred, target = _pair()
    mask = torch.zeros(3, 1, 32, 40)
    out = image_metrics(pred, target, mask)
    for i in range(3):
        p, t = pred[i].permute(1, 2, 0).double().numpy(), target[i].permute(1, 2, 0).double().numpy()
        assert out["psnr"][i].item() == pytest.approx(peak_signal_noise_ratio(t, p, data_range=1), abs=1e-4)
        ref = structural_similarity(
            t, p, channel_axis=-1, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert out["ssim"][i].item() == pytest.approx(ref, abs=1e-5)


def test_l1_and_l1_hole_and_psnr_cap() -> None:
    target = torch.zeros(2, 3, 16, 16)
    pred = target.clone()
    mask = torch.zeros(2, 1, 16, 16)
    mask[0, :, :4] = 1  # a quarter of image 0 is the hole, and only the hole is wrong by 0.5
    pred[0, :, :4] = 0.5
    out = image_metrics(pred, target, mask)
    assert out["l1"][0].item() == pytest.approx(0.125)
    assert out["l1_hole"][0].item() == pytest.approx(0.5)
    assert out["l1_hole"][1].item() == 0.0  # no hole, no hole error
    assert out["psnr"][1].item() == MAX_PSNR  # identical images: capped, not inf
    assert math.isinf(image_metrics(pred, target, mask, max_psnr=None)["psnr"][1].item())
    assert all(v.shape == (2,) for v in out.values())


def test_shape_errors() -> None:
    pred, target = _pair(b=2)
    with pytest.raises(ValueError, match="mask must be B x 1 x H x W"):
        image_metrics(pred, target, torch.zeros(2, 32, 40))
    with pytest.raises(ValueError, match="SSIM needs images larger"):
        image_metrics(pred[..., :8, :8], target[..., :8, :8], torch.zeros(2, 1, 8, 8))


def test_area_bucket_edges() -> None:
    assert AREA_BUCKETS[0] == (0.0, 0.1) and AREA_BUCKETS[-1] == (0.5, 0.6)
    assert AREA_LABELS == ["00-10", "10-20", "20-30", "30-40", "40-50", "50-60", "60-100"]
    assert area_bucket(0.0) == "00-10"
    assert area_bucket(0.0999) == "00-10"
    assert area_bucket(0.1) == "10-20"  # [lo, hi): an exact edge belongs to the upper bucket
    assert area_bucket(100 / 1000) == "10-20"
    assert area_bucket(0.3) == "30-40"
    assert area_bucket(0.5999) == "50-60"
    assert area_bucket(0.6) == "60-100"
    assert area_bucket(1.0) == "60-100"
    for bad in (-0.01, 1.01, math.nan):
        with pytest.raises(ValueError):
            area_bucket(bad)


def test_metric_bucket_rule_matches_area_bucket() -> None:
    fractions = [0.0, 0.05, 0.1, 0.2, 0.299, 0.3, 0.5, 0.599, 0.6, 0.9, 1.0]
    mask = _mask_with_fraction(fractions)
    got = BucketedImageMetrics.bucket_indices(mask).tolist()
    want = [area_bucket_index(float(m.sum()) / m.numel()) for m in mask]  # exact count / size
    assert got == want
    assert [AREA_LABELS[i] for i in got][2] == "10-20"


def test_bucketed_metric_equals_manual_means_and_merges_like_ddp() -> None:
    fractions = [0.02, 0.1, 0.15, 0.35, 0.65, 0.12]
    mask = _mask_with_fraction(fractions)
    pred, target = _pair(b=6, h=20, w=50, seed=1)
    per = image_metrics(pred, target, mask)
    labels = [area_bucket(float(m.sum()) / m.numel()) for m in mask]

    metric = BucketedImageMetrics()
    metric.update(pred[:4], target[:4], mask[:4])
    metric.update(pred[4:], target[4:], mask[4:])
    out = metric.compute()

    assert out["psnr"].item() == pytest.approx(per["psnr"].mean().item(), rel=1e-5)
    assert out["ssim"].item() == pytest.approx(per["ssim"].mean().item(), rel=1e-5)
    for label in set(labels):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        for name in ("psnr", "ssim"):
            assert out[f"{name}_{label}"].item() == pytest.approx(per[name][idx].mean().item(), rel=1e-5)
    assert "psnr_20-30" not in out and "psnr_60-100" in out  # empty buckets are left out
    assert set(out) == {"psnr", "ssim"} | {f"{n}_{lab}" for n in ("psnr", "ssim") for lab in set(labels)}

    # what DDP does: each rank's states are summed; the merged result equals the single-process one
    rank0, rank1 = BucketedImageMetrics(), BucketedImageMetrics()
    rank0.update(pred[:3], target[:3], mask[:3])
    rank1.update(pred[3:], target[3:], mask[3:])
    rank0.merge_state(rank1)
    merged = rank0.compute()
    assert set(merged) == set(out)
    assert all(merged[k].item() == pytest.approx(out[k].item(), rel=1e-6) for k in out)

    metric.reset()
    metric.update(pred[:1], target[:1], mask[:1])
    assert set(metric.compute()) == {"psnr", "ssim", "psnr_00-10", "ssim_00-10"}


def test_bucketed_metric_extra_metrics_and_validation() -> None:
    metric = BucketedImageMetrics(metrics=("psnr", "l1_hole"))
    mask = _mask_with_fraction([0.25])
    pred, target = _pair(b=1, h=20, w=50)
    metric.update(pred, target, mask)
    assert set(metric.compute()) == {"psnr", "l1_hole", "psnr_20-30", "l1_hole_20-30"}
    with pytest.raises(ValueError, match="subset"):
        BucketedImageMetrics(metrics=("fid",))


def test_mean_ci() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    mean, half = mean_ci(values)
    assert mean == 2.5
    # t(0.975, df=3) = 3.182446305; sample std = 1.290994449; sem = 0.645497224
    assert half == pytest.approx(3.182446305284263 * 0.6454972243679028, rel=1e-9)
    assert mean_ci(np.array(values)) == pytest.approx((mean, half))
    assert mean_ci(torch.tensor(values)) == pytest.approx((mean, half))
    m1, h1 = mean_ci([5.0])
    assert m1 == 5.0 and math.isnan(h1)
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 0.0)
    with pytest.raises(ValueError):
        mean_ci([])
