"""Albumentations pipelines that turn a photo of any size into a square ``image_size`` crop.

Both pipelines take ``image=`` (``H x W x 3`` uint8) and optionally ``mask=`` (``H x W`` uint8, a mask file paired
with the image); a mask goes through the same geometry with nearest-neighbour resampling so holes stay binary and
line up with the pixels they cover.

* :func:`train_transform`: ``RandomResizedCrop`` to ``image_size x image_size`` taking a random region of
  ``scale`` = 35-100 % of the image area with aspect ratio 3/4..4/3, then a horizontal flip half of the time.
  The lower bound 0.35 keeps the training zoom close to the evaluation view (the evaluation crop is the largest
  centred square at short side = ``image_size``; for a 4:3 photo a 0.35-area square is 0.68 of the short side, so
  training sees objects at 1x..1.5x the evaluation scale instead of ImageNet's 0.08 (up to 3.5x)).
  Because the region is resized to the output size, **images smaller than the crop are upscaled** (a 20x30 image
  becomes a 64x64 crop): they work, but are blurry; prefer sources at least ``image_size`` on their short side.
* :func:`multiscale_train_transform`: the whole photo is first resized so its short side is a random size between
  ``short_side[0]`` and ``short_side[1]`` (log-uniform over 16 steps), then a random ``image_size`` square is cut
  at that scale, then flipped half of the time. One model then sees objects at the evaluation's scale (a whole
  photo at 256 px) and at the scale of a full-resolution photo in ``predict`` (a 128-px crop of a photo at 1024 px
  covers an eighth of its height), instead of only one of them.
* :func:`eval_transform`: ``SmallestMaxSize`` (short side -> ``image_size``, again upscaling small images) then
  ``CenterCrop``: fully deterministic, so a validation image gives the same pixels in every run.

Downscaling uses ``INTER_AREA`` (no aliasing when a 4000 px photo becomes 256 px) and upscaling ``INTER_LINEAR``
(``area_for_downscale="image"``).

Randomness: albumentations 2.0 keeps its own random state inside each ``Compose`` (it does not follow
``numpy``/``torch`` seeds, and a copy pickled into every DataLoader worker would repeat the same crops in each
worker). :class:`inpainting.data.datasets.InpaintingDataset` therefore calls ``transform.set_random_seed(...)`` before
each sample with a seed derived the same way as the training mask seed, which makes crops reproducible under
``seed_everything(seed, workers=True)`` and different across workers and ranks.
"""

from __future__ import annotations

import numbers

import albumentations as A
import cv2

#: Fraction of the image area a training crop covers (see the module docstring).
TRAIN_CROP_SCALE: tuple[float, float] = (0.35, 1.0)
#: How every pipeline resamples: bilinear images, nearest-neighbour masks (holes stay binary), INTER_AREA downscaling.
RESIZE = {
    "interpolation": cv2.INTER_LINEAR,
    "mask_interpolation": cv2.INTER_NEAREST,
    "area_for_downscale": "image",
}
#: Aspect-ratio range of the region a training crop covers before it is resized to a square.
TRAIN_CROP_RATIO: tuple[float, float] = (3 / 4, 4 / 3)


def check_image_size(image_size: object, name: str = "image_size") -> int:
    """Return ``image_size`` as an int, or raise ``ValueError`` naming the option and what is accepted."""
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) or int(image_size) < 1:
        raise ValueError(
            f"{name} must be a positive integer (the side in pixels of the square crops fed to the network), "
            f"got {image_size!r}"
        )
    return int(image_size)


def train_transform(
    image_size: int,
    scale: tuple[float, float] = TRAIN_CROP_SCALE,
    ratio: tuple[float, float] = TRAIN_CROP_RATIO,
    hflip: bool = True,
) -> A.Compose:
    """Random square crop of side ``image_size`` (works for any input size) plus a random horizontal flip."""
    size = check_image_size(image_size)
    if not (0.0 < scale[0] <= scale[1] <= 1.0):
        raise ValueError(
            f"scale must satisfy 0 < min <= max <= 1 (fractions of the image area), got {scale!r}"
        )
    transforms: list = [
        A.RandomResizedCrop(
            size=(size, size),
            scale=tuple(scale),
            ratio=tuple(ratio),
            **RESIZE,
        )
    ]
    if hflip:
        transforms.append(A.HorizontalFlip(p=0.5))
    return A.Compose(transforms)


def multiscale_train_transform(
    image_size: int, short_side: tuple[int, int], hflip: bool = True, steps: int = 16
) -> A.Compose:
    """Random downscale of the whole photo (short side in ``short_side``), then a random square crop, then a flip."""
    size = check_image_size(image_size)
    if len(short_side) != 2 or not (size <= int(short_side[0]) <= int(short_side[1])):
        raise ValueError(
            f"train_short_side must be [min, max] with image_size ({size}) <= min <= max (pixels of the photo's short "
            f"side before cropping), got {list(short_side)!r}"
        )
    low, high = int(short_side[0]), int(short_side[1])
    sizes = sorted({round(low * (high / low) ** (i / max(steps - 1, 1))) for i in range(steps)})
    transforms: list = [
        A.SmallestMaxSize(
            max_size=sizes,
            **RESIZE,
        ),
        A.RandomCrop(height=size, width=size),
    ]
    if hflip:
        transforms.append(A.HorizontalFlip(p=0.5))
    return A.Compose(transforms)


def eval_transform(image_size: int) -> A.Compose:
    """Deterministic: resize the short side to ``image_size`` (up or down), then take the centred square."""
    size = check_image_size(image_size)
    return A.Compose(
        [
            A.SmallestMaxSize(
                max_size=size,
                **RESIZE,
            ),
            A.CenterCrop(height=size, width=size),
        ]
    )
