"""Per-image inpainting metrics, hole-area buckets and confidence intervals.

Inputs are ``B x 3 x H x W`` float tensors in [0, 1] (the composite ``out * mask + image * (1 - mask)`` mapped
from [-1, 1], as the batch contract says) and ``B x 1 x H x W`` masks with 1 = missing.

* :func:`image_metrics`: per-image PSNR, SSIM (torchmetrics' functional API, 11x11 Gaussian window with
  sigma 1.5, the settings of Wang et al. 2004, with the 5-pixel border dropped as in their reference code, so it
  equals scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1)``), L1 over the image and L1 inside the hole.
* Area buckets follow the partial-convolution protocol (Liu et al. 2018, "Image Inpainting for Irregular Holes
  Using Partial Convolutions"): results are reported per hole fraction 0-10%, 10-20%, ..., 50-60%. Intervals are
  half-open ``[lo, hi)``: a hole of exactly 10% is in "10-20", an empty mask in "00-10"; anything >= 60% lands in
  an overflow bucket labelled "60-100" (a plain label, so it is a valid metric name for every logger).
* :class:`BucketedImageMetrics`: a torchmetrics ``Metric`` for validation loops (DDP-synced sums and counts).
* :func:`mean_ci`: mean and 95% confidence half-width for tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from inpainting.evaluation.mask_sets import AREA_BUCKETS

#: Label of holes covering at least the last bucket's upper edge (60%).
OVERFLOW_LABEL = "60-100"
#: Every label :func:`area_bucket` can return, in order.
AREA_LABELS: list[str] = [f"{round(lo * 100):02d}-{round(hi * 100):02d}" for lo, hi in AREA_BUCKETS] + [
    OVERFLOW_LABEL
]

#: Border (pixels) left out of the SSIM mean: the radius of the 11x11 Gaussian window (sigma 1.5, truncated at 3.5).
SSIM_PAD = 5

#: PSNR of identical images is infinite; it is capped here so that means stay finite (an empty hole, say).
MAX_PSNR = 100.0

# Fewest pairs behind a Fréchet distance that the reports print (config: fid_min_samples, vgg_fid_min_samples).
# FID's bias grows like 1/n with a constant that depends on the images (Chong & Forsyth 2020, "Effectively
# Unbiased FID and Inception Score"), so at a few dozen pairs the bias, not the method, sets the number and two
# methods can swap order; below the feature dimension D the sample covariance is also singular (rank <= n - 1),
# so the trace term compares degenerate Gaussians. Heusel et al. used 50,000 images and torch-fidelity /
# clean-fid recommend thousands; D is the least at which the covariance can be full rank, hence 2,048 for
# Inception pool3 and 512 for the VGG relu5_3 variant. Even above the floor, compare cells with equal n only.
#: Inception-v3 pool3 feature dimension: the floor of the standard FID.
FID_MIN_SAMPLES = 2048
#: VGG16 relu5_3 feature dimension: the floor of the non-standard VGG feature FID.
VGG_FID_MIN_SAMPLES = 512


def area_bucket(fraction: float) -> str:
    """Bucket label of a hole fraction in [0, 1]: "00-10", "10-20", ..., "50-60", or "60-100".

    Compute the fraction exactly as ``count / size`` in float64 (as the mask generators do): ``k / 10`` is then
    compared without rounding surprises, so exactly 10% goes to "10-20".
    """
    return AREA_LABELS[area_bucket_index(fraction)]


def area_bucket_index(fraction: float) -> int:
    """Index into :data:`AREA_LABELS` of a hole fraction (see :func:`area_bucket`)."""
    fraction = float(fraction)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"hole fraction must be in [0, 1], got {fraction!r}")
    for index, (lo, hi) in enumerate(AREA_BUCKETS):
        if lo <= fraction < hi:
            return index
    return len(AREA_BUCKETS)


def _check(pred: Tensor, target: Tensor, mask: Tensor) -> None:
    if pred.ndim != 4 or pred.shape[1] != 3 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must both be B x 3 x H x W, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if (
        mask.ndim != 4
        or mask.shape[1] != 1
        or mask.shape[0] != pred.shape[0]
        or mask.shape[2:] != pred.shape[2:]
    ):
        raise ValueError(
            f"mask must be B x 1 x H x W matching pred {tuple(pred.shape)}, got {tuple(mask.shape)}"
        )


def _ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image SSIM averaged over the pixels whose 11x11 window lies inside the image.

    torchmetrics (1.9) averages its SSIM map over the whole reflect-padded image; scikit-image and Wang et al.'s
    reference MATLAB code drop the ``SSIM_PAD``-pixel border where the window would leave the image. We take
    torchmetrics' map and crop it, so the numbers equal scikit-image's and the published convention.
    """
    if min(pred.shape[-2:]) <= 2 * SSIM_PAD:
        raise ValueError(
            f"SSIM needs images larger than {2 * SSIM_PAD} x {2 * SSIM_PAD}, got {tuple(pred.shape[-2:])}"
        )
    _, ssim_map = structural_similarity_index_measure(
        pred,
        target,
        gaussian_kernel=True,
        sigma=1.5,
        kernel_size=11,
        data_range=1.0,
        reduction="none",
        return_full_image=True,
    )
    return ssim_map[..., SSIM_PAD:-SSIM_PAD, SSIM_PAD:-SSIM_PAD].mean(dim=(1, 2, 3))


def image_metrics(
    pred: Tensor, target: Tensor, mask: Tensor, max_psnr: float | None = MAX_PSNR
) -> dict[str, Tensor]:
    """Per-image metrics: ``{"psnr", "ssim", "l1", "l1_hole"}``, each a ``B`` tensor.

    ``pred``/``target``: ``B x 3 x H x W`` in [0, 1]; ``mask``: ``B x 1 x H x W``, 1 = missing. PSNR is in dB with
    data range 1 and capped at ``max_psnr`` (None: no cap); ``l1`` is the mean absolute error over the whole image,
    ``l1_hole`` over the hole pixels only (0 for an image without a hole).
    """
    _check(pred, target, mask)
    dtype = (
        torch.float64 if pred.dtype == torch.float64 else torch.float32
    )  # half precision is too coarse for SSIM
    pred, target, mask = pred.to(dtype), target.to(dtype), mask.to(dtype)
    psnr = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    if max_psnr is not None:
        psnr = psnr.clamp(max=max_psnr)
    ssim = _ssim(pred, target)
    abs_err = (pred - target).abs()
    l1 = abs_err.mean(dim=(1, 2, 3))
    hole = (mask > 0.5).to(abs_err.dtype)
    hole_pixels = hole.sum(dim=(1, 2, 3)) * pred.shape[1]
    l1_hole = (abs_err * hole).sum(dim=(1, 2, 3)) / hole_pixels.clamp(min=1)
    return {"psnr": psnr, "ssim": ssim, "l1": l1, "l1_hole": l1_hole}


def mean_ci(values: Iterable[float] | np.ndarray | Tensor, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and confidence-interval half-width of ``values`` (Student's t).

    With fewer than two values the half-width is NaN: there is no spread to estimate.
    """
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, math.nan
    sem = float(arr.std(ddof=1)) / math.sqrt(arr.size)
    from scipy import stats  # a dependency; imported here because scipy.stats takes a while to load

    quantile = float(stats.t.ppf(0.5 + confidence / 2, df=arr.size - 1))
    return mean, quantile * sem


class BucketedImageMetrics(Metric):
    """Mean PSNR and SSIM overall and per hole-area bucket, accumulated over a validation/test epoch.

    ``update(pred, target, mask)`` takes the same tensors as :func:`image_metrics`. States are per-bucket sums and
    counts reduced with ``sum``, so DDP ranks combine exactly (a mean of means would weight ranks wrongly).
    ``compute()`` returns ``{"psnr", "ssim"}`` over all images plus ``"psnr_<label>"``/``"ssim_<label>"`` for
    every bucket that received at least one image (labels from :data:`AREA_LABELS`, e.g. ``"psnr_10-20"``).
    ``compute()`` syncs the states across ranks first, so every rank returns the same keys. In a LightningModule::

        self.val_metrics.update(composite01, image01, mask)          # in validation_step
        self.log_dict({f"val/{k}": v for k, v in self.val_metrics.compute().items()})  # on_validation_epoch_end
        self.val_metrics.reset()
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, metrics: Sequence[str] = ("psnr", "ssim"), **kwargs: object) -> None:
        super().__init__(**kwargs)
        unknown = set(metrics) - {"psnr", "ssim", "l1", "l1_hole"}
        if unknown or not metrics:
            raise ValueError(
                f"metrics must be a non-empty subset of psnr, ssim, l1, l1_hole; got {list(metrics)}"
            )
        self.metric_names = tuple(metrics)
        n = len(AREA_LABELS)
        self.add_state("sums", default=torch.zeros(len(self.metric_names), n), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        values = image_metrics(pred, target, mask)
        buckets = self.bucket_indices(mask).to(self.counts.device)
        self.counts += torch.bincount(buckets, minlength=len(AREA_LABELS))
        for row, name in enumerate(self.metric_names):
            self.sums[row].index_add_(0, buckets, values[name].to(self.sums.dtype))

    @staticmethod
    def bucket_indices(mask: Tensor) -> Tensor:
        """Bucket index per image, in integer arithmetic: ``k = floor(10 * holes / pixels)`` is exactly the
        half-open rule of :func:`area_bucket_index`, with no float64 (which some accelerators lack)."""
        counts = (mask > 0.5).flatten(1).sum(dim=1)
        return torch.clamp((counts * 10) // mask[0].numel(), max=len(AREA_BUCKETS))

    def compute(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        total = self.counts.sum().clamp(min=1).to(self.sums.dtype)
        for row, name in enumerate(self.metric_names):
            out[name] = self.sums[row].sum() / total
        for index, label in enumerate(AREA_LABELS):
            count = self.counts[index]
            if int(count) > 0:
                for row, name in enumerate(self.metric_names):
                    out[f"{name}_{label}"] = self.sums[row, index] / count.to(self.sums.dtype)
        return out


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance of two Gaussians: ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` (Heusel et al. 2017).

    ``tr (S1 S2)^(1/2)`` is the sum of square roots of the eigenvalues of ``S1 S2``, which are real and non-negative
    for covariance matrices (torchmetrics' formulation; no matrix square root, so a singular covariance from fewer
    samples than dimensions is fine). float64 throughout.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2)
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues.real, 0.0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def fid_from_features(fake: np.ndarray, real: np.ndarray) -> float:
    """FID of two ``N x D`` feature sets (sample covariance with ``N - 1``, as pytorch-fid and torchmetrics).

    With fewer samples than dimensions (any evaluation under a few thousand images, D = 2048) the trace term is
    computed exactly from the samples: with centred ``X`` (n x D) and ``Y`` (m x D), ``S1 = X'X / (n-1)`` and
    ``S2 = Y'Y / (m-1)``, the non-zero eigenvalues of ``S1 S2`` are those of ``X S2 X' / (n-1)`` =
    ``C C' / ((n-1)(m-1))`` with ``C = X Y'``, so ``tr (S1 S2)^(1/2)`` is the sum of the singular values of ``C``
    over ``sqrt((n-1)(m-1))``: an ``n x m`` SVD instead of a ``D x D`` eigenproblem (seconds each at D = 2048).
    """
    fake, real = np.asarray(fake, np.float64), np.asarray(real, np.float64)
    n, m = len(fake), len(real)
    if n < 2 or m < 2:
        return math.nan
    if min(n, m) > fake.shape[1]:
        return frechet_distance(
            fake.mean(axis=0), np.cov(fake, rowvar=False), real.mean(axis=0), np.cov(real, rowvar=False)
        )
    x, y = fake - fake.mean(axis=0), real - real.mean(axis=0)
    trace_sqrt = float(np.linalg.svd(x @ y.T, compute_uv=False).sum()) / math.sqrt((n - 1) * (m - 1))
    mean_term = float(((fake.mean(axis=0) - real.mean(axis=0)) ** 2).sum())
    return mean_term + float((x**2).sum()) / (n - 1) + float((y**2).sum()) / (m - 1) - 2.0 * trace_sqrt
