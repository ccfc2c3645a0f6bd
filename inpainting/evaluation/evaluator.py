"""The evaluation loop: every method on the same images and the same fixed masks, one row per result.

Everything is judged on uint8 composites (what would be saved to disk), so a network and a classical
baseline are compared on identical terms, and two runs on the same inputs give identical numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from inpainting.data.images import ImageReadError, read_image_rgb, read_mask
from inpainting.data.transforms import eval_transform
from inpainting.evaluation.mask_sets import mask_set
from inpainting.evaluation.methods import Method, ModelInpainter
from inpainting.evaluation.metrics import area_bucket, image_metrics
from inpainting.models.vgg import VGG16Features, feature_distance, feature_distance_label

log = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "l1", "l1_hole")


@dataclass
class EvalImage:
    name: str
    image: np.ndarray  # uint8 H x W x 3
    masks: dict[str, list[np.ndarray]] = field(default_factory=dict)  # mask set -> masks for this image


def load_images(paths: Sequence[Path], image_size: int) -> list[EvalImage]:
    """Read and centre-crop images to ``image_size`` (the validation transform); unreadable files are skipped."""
    transform = eval_transform(image_size)
    images = []
    for path in paths:
        try:
            array = read_image_rgb(path)
        except ImageReadError as error:
            log.warning("skipping %s", error)
            continue
        images.append(EvalImage(Path(path).stem, transform(image=array)["image"]))
    if not images:
        raise ValueError(f"no readable images to evaluate among {len(paths)} files")
    return images


def attach_mask_sets(images: list[EvalImage], names: Sequence[str], masks_per_image: int, seed: int) -> None:
    """Give image j masks ``j*k .. j*k+k-1`` of each named set: fixed, seeded, identical on every machine."""
    if masks_per_image < 1:
        raise ValueError(f"masks_per_image must be a positive integer, got {masks_per_image}")
    height, width = images[0].image.shape[:2]
    for name in names:
        masks = mask_set(name, len(images) * masks_per_image, height, width, seed=seed)
        for j, item in enumerate(images):
            item.masks[name] = masks[j * masks_per_image : (j + 1) * masks_per_image]


def load_pairs(pairs: Sequence[tuple[Path, Path]], image_size: int) -> list[EvalImage]:
    """User-supplied image + mask files (white = missing), resized and cropped together."""
    transform = eval_transform(image_size)
    images = []
    for image_path, mask_path in pairs:
        image, mask = read_image_rgb(image_path), read_mask(mask_path)
        if image.shape[:2] != mask.shape:
            raise ValueError(
                f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but image {image_path} is "
                f"{image.shape[1]}x{image.shape[0]} (width x height): they must match"
            )
        out = transform(image=image, mask=mask)
        images.append(
            EvalImage(Path(mask_path).stem, out["image"], {"pairs": [out["mask"].astype(np.uint8)]})
        )
    return images


def _to_unit(batch: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div(255.0)


class FeatureMetrics:
    """Optional feature-space measures. The VGG16 ones are labelled non-standard wherever printed."""

    def __init__(self, vgg: VGG16Features | None, standard_fid: nn.Module | None = None) -> None:
        self.vgg = vgg
        self.distance_label = feature_distance_label(vgg) if vgg is not None else None
        self.fid_label = (
            f"FID on {self.distance_label.split(' feature')[0]} relu5_3 features (non-standard, not Inception FID)"
            if vgg is not None
            else None
        )
        self.standard_fid = standard_fid
        self._fid: dict[str, FrechetInceptionDistance] = {}

    def distance(self, pred: Tensor, target: Tensor) -> Tensor | None:
        if self.vgg is None:
            return None
        with torch.no_grad():
            return feature_distance(pred, target, self.vgg)

    def update_fid(self, method: str, pred: Tensor, target: Tensor) -> None:
        if self.vgg is None:
            return
        if method not in self._fid:
            self._fid[method] = FrechetInceptionDistance(feature=PooledVGG(self.vgg), normalize=True)
        with torch.no_grad():
            self._fid[method].update(target, real=True)
            self._fid[method].update(pred, real=False)

    def fid(self) -> dict[str, float]:
        return {name: float(metric.compute()) for name, metric in self._fid.items()}


class PooledVGG(nn.Module):
    """relu5_3 features averaged over positions: a 512-d image descriptor for a Fréchet distance."""

    def __init__(self, vgg: VGG16Features) -> None:
        super().__init__()
        self.vgg = VGG16Features(layers=("relu5_3",))
        self.vgg.load_state_dict(vgg.state_dict())
        self.num_features = 512

    def forward(self, images: Tensor) -> Tensor:
        return self.vgg(images.float())["relu5_3"].mean(dim=(2, 3))


def run_method(method: Method, images: np.ndarray, masks: np.ndarray, batch_size: int) -> np.ndarray:
    """Composites for ``N`` images: networks in batches, classical methods one image at a time."""
    if isinstance(method.inpaint, ModelInpainter):
        parts = [
            method.inpaint.batch(images[i : i + batch_size], masks[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(parts)
    return np.stack([method.inpaint(image, mask) for image, mask in zip(images, masks, strict=True)])


def evaluate(
    images: list[EvalImage],
    methods: Sequence[Method],
    features: FeatureMetrics | None = None,
    batch_size: int = 8,
    keep_outputs: int = 4,
) -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    """Evaluate every method on every (image, mask) pair.

    Returns rows (image, mask_set, mask_index, hole_fraction, bucket, method, metrics...) and, per mask set,
    the first ``keep_outputs`` composites of each method for sample grids (plus "input" and "ground truth").
    """
    rows: list[dict] = []
    grids: dict[str, dict[str, np.ndarray]] = {}
    for set_name in images[0].masks:
        entries = [(item, k, m) for item in images for k, m in enumerate(item.masks[set_name])]
        truth = np.stack([item.image for item, _, _ in entries])
        masks = np.stack([m for _, _, m in entries]).astype(np.uint8)
        fractions = masks.reshape(len(masks), -1).mean(axis=1, dtype=np.float64)
        target = _to_unit(truth)
        mask_t = torch.from_numpy(masks[:, None].astype(np.float32))
        grids[set_name] = {
            "input": np.where(masks[:keep_outputs, ..., None] != 0, 255, truth[:keep_outputs]).astype(
                np.uint8
            ),
            "ground truth": truth[:keep_outputs],
        }
        for method in methods:
            log.info("evaluating %s on %s (%d pairs)", method.name, set_name, len(entries))
            outputs = run_method(method, truth, masks, batch_size)
            grids[set_name][method.name] = outputs[:keep_outputs]
            pred = _to_unit(outputs)
            values = {k: v.double().numpy() for k, v in image_metrics(pred, target, mask_t).items()}
            distance = None
            if features is not None:
                chunks = [
                    features.distance(pred[i : i + batch_size], target[i : i + batch_size])
                    for i in range(0, len(pred), batch_size)
                ]
                distance = torch.cat(chunks).double().numpy() if chunks[0] is not None else None
                for i in range(0, len(pred), batch_size):
                    features.update_fid(method.name, pred[i : i + batch_size], target[i : i + batch_size])
            for i, (item, k, _) in enumerate(entries):
                row = {
                    "image": item.name,
                    "mask_set": set_name,
                    "mask_index": k,
                    "hole_fraction": round(float(fractions[i]), 6),
                    "bucket": area_bucket(float(fractions[i])),
                    "method": method.name,
                    **{name: float(values[name][i]) for name in METRICS},
                }
                if distance is not None:
                    row["feature_distance"] = float(distance[i])
                rows.append(row)
    return rows, grids
