"""Reading image and mask files, and finding them on disk.

Every image enters the framework through :func:`read_image_rgb`, which turns whatever Pillow can open into one
predictable thing, an ``H x W x 3`` ``uint8`` RGB array, *as a viewer would display it*:

* EXIF orientation is applied (a phone photo stored sideways with orientation tag 6 comes back upright);
* greyscale (``L``, ``1``) is replicated to three channels;
* palette images (``P``/``PA``) are expanded through their palette;
* images with transparency (``RGBA``, ``LA``, ``PA``, palette with a transparent colour) are **composited over
  white**, which is how browsers and image viewers show them. Dropping the alpha channel instead would expose
  whatever colour the encoder left under fully transparent pixels (often black or garbage);
* CMYK and YCbCr are converted with Pillow's own conversion;
* 16-bit images (``I;16``, ``I;16B``, ``I;16L``, and ``I`` holding values in ``0..65535``) are **scaled** to 8 bit
  (``round(v / 257)``, so 65535 -> 255), not clipped as ``Image.convert("RGB")`` would do. ``I`` images with values
  outside ``0..65535`` and float (``F``) images outside ``[0, 1]`` are stretched linearly from their min..max.

Files that cannot be decoded raise :class:`ImageReadError` (a ``ValueError``) whose message names the file. So do
files whose header declares more pixels than Pillow's ``PIL.Image.MAX_IMAGE_PIXELS`` (about 89 megapixels by default;
Pillow only warns up to twice that): the size is read from the header, before any pixel is decoded, so a small
file claiming a huge size cannot exhaust memory.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inpainting.errors import InputError

log = logging.getLogger("inpainting.data")

#: File extensions (lower case, with the dot) that :func:`list_images` picks up; matching is case-insensitive.
#: A gif is read as its first frame.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class ImageReadError(InputError):
    """A file could not be read as an image. ``path`` holds the file, ``str(err)`` names it and says why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image file {self.path}: {reason}")


class NoImagesFoundError(InputError):
    """A folder exists but holds no file with one of :data:`IMAGE_EXTENSIONS`."""


# --------------------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------------------


def _scale_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Scale a single-channel high-bit-depth array (from mode ``I;16*``, ``I`` or ``F``) to uint8."""
    if mode.startswith("I;16") or arr.dtype == np.uint16:
        return np.round(arr.astype(np.float32) / 257.0).astype(np.uint8)
    if mode == "I":
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo >= 0 and hi <= 65535:  # the usual case: a 16-bit PNG/TIFF that Pillow opened as 32-bit int
            return np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)
        return _stretch(arr.astype(np.float64))
    # "F": floating point
    arr = np.nan_to_num(arr.astype(np.float64))
    if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
        return np.round(arr * 255.0).astype(np.uint8)
    return _stretch(arr)


def _stretch(arr: np.ndarray) -> np.ndarray:
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _composite(im: Image.Image, background: int) -> Image.Image:
    """RGBA/LA -> RGB/L composited over a uniform ``background`` grey level."""
    if im.mode == "LA":
        base = Image.new("L", im.size, background)
        base.paste(im.getchannel("L"), mask=im.getchannel("A"))
        return base
    im = im.convert("RGBA")
    base = Image.new("RGB", im.size, (background,) * 3)
    base.paste(im, mask=im.getchannel("A"))
    return base


def _to_array(im: Image.Image, *, channels: int, background: int) -> np.ndarray:
    """Convert an opened (already EXIF-transposed) Pillow image to uint8 with 3 (RGB) or 1 (grey) channels."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        grey = _scale_to_uint8(np.asarray(im), mode)
        return np.repeat(grey[:, :, None], 3, axis=2) if channels == 3 else grey
    if (mode == "P" and "transparency" in im.info) or mode == "PA":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "La", "RGBa"):
        if im.mode == "La":
            im = im.convert("LA")
        elif im.mode == "RGBa":
            im = im.convert("RGBA")
        im = _composite(im, background)
    target = "RGB" if channels == 3 else "L"
    if im.mode != target:
        im = im.convert(target)  # L, 1, P, CMYK, YCbCr, RGBX, LAB, HSV, ...
    arr = np.asarray(im, dtype=np.uint8)
    return np.ascontiguousarray(arr)


def _check_pixel_count(path: Path, size: tuple[int, int]) -> None:
    """Refuse, from the header's size, an image over ``Image.MAX_IMAGE_PIXELS`` before it is decoded."""
    limit = Image.MAX_IMAGE_PIXELS
    width, height = size
    if limit is not None and width * height > limit:
        raise ImageReadError(
            path,
            f"its header says {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), over the limit of "
            f"{limit / 1e6:.1f} megapixels (PIL.Image.MAX_IMAGE_PIXELS); downscale it first",
        )


def _open_oriented(path: Path) -> Image.Image:
    """Open and fully decode ``path``; apply EXIF orientation. Raises ImageReadError."""
    if not path.exists():
        if path.is_symlink():  # exists() follows the link: a loop or a removed target
            raise ImageReadError(
                path, "a symbolic link that leads nowhere (a link loop, or its target is gone)"
            )
        raise ImageReadError(path, "the file does not exist")
    if path.is_dir():
        raise ImageReadError(path, "it is a directory, not a file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():  # the warning Pillow gives between 1x and 2x its limit: an error here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)  # reads the header only
        with opened:
            _check_pixel_count(path, opened.size)
            opened.load()  # decode now: truncated or corrupt data fails here, inside the try
            try:
                im = ImageOps.exif_transpose(opened)  # a transposed copy, or a plain copy without orientation
            except Exception as err:  # a broken EXIF block must not make a decodable picture unreadable
                log.debug("ignoring unusable EXIF orientation in %s: %s", path, err)
                im = opened.copy()
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image format (corrupt or not an image)") from None
    except Image.DecompressionBombError as err:
        raise ImageReadError(path, f"too large for Pillow's decompression-bomb guard ({err})") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # truncated data, bad headers, ...
        raise ImageReadError(path, f"{type(err).__name__}: {err}") from err
    return im


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read any image file Pillow can decode as an ``H x W x 3`` ``uint8`` RGB array (see the module docstring).

    Raises:
        ImageReadError: the file is missing, a directory, truncated, corrupt, or not an image; the message names it.
    """
    path = Path(path)
    im = _open_oriented(path)
    try:
        return _to_array(im, channels=3, background=255)
    except (OSError, ValueError) as err:
        raise ImageReadError(path, f"cannot convert mode {im.mode!r} to RGB: {err}") from err


def read_mask(path: str | os.PathLike, threshold: int = 127) -> np.ndarray:
    """Read a mask file as ``H x W`` ``uint8`` in ``{0, 1}``, **1 = missing** (white/bright pixels are holes).

    The file is read like an image (EXIF orientation applied, 16-bit scaled), converted to grey, and thresholded:
    ``grey > threshold`` -> 1. Transparent pixels count as black (kept), so a brush layer of white strokes on a
    transparent background (what painting tools export) reads as "strokes = missing".

    **0/1 masks**: a file whose pixels are all 0 or 1, with at least one 1 (what ``Image.fromarray(holes)`` saves
    from a 0/1 ``uint8``/``uint16`` array), is read as is, 1 = missing, whatever ``threshold``: thresholded, its
    holes (grey level 1) would all read as kept and the mask as empty. One pixel above 1 makes it a grey mask.
    """
    path = Path(path)
    im = _open_oriented(path)
    try:
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # before 16-bit scaling turns 1 into 0
            raw = np.asarray(im)
            if raw.size and raw.min() >= 0 and raw.max() == 1:
                return raw.astype(np.uint8)
        grey = _to_array(im, channels=1, background=0)
    except (OSError, ValueError) as err:
        raise ImageReadError(path, f"cannot convert mode {im.mode!r} to a grey mask: {err}") from err
    if grey.size and grey.max() == 1:  # a 0/1 mask (uint8: max 1 means every value is 0 or 1)
        return grey
    return (grey > threshold).astype(np.uint8)


def check_mask_size(
    image: np.ndarray,
    mask: np.ndarray,
    image_name: str | os.PathLike | None = None,
    mask_name: str | os.PathLike | None = None,
) -> None:
    """Refuse a mask whose ``H x W`` differs from its image's: the one size rule of every tool that takes pairs.

    Sizes are written width x height; ``image_name`` / ``mask_name`` (files, where there are any) are named in the
    :class:`~inpainting.errors.InputError`.
    """
    if mask.shape == image.shape[:2]:
        return
    (height, width), (mask_height, mask_width) = image.shape[:2], mask.shape[:2]
    image_label = f"image {image_name}" if image_name is not None else "image"
    mask_label = f"its mask {mask_name}" if mask_name is not None else "its mask"
    raise InputError(
        f"{image_label} is {width}x{height} (WxH) but {mask_label} is {mask_width}x{mask_height}: "
        "they must be the same size"
    )


# --------------------------------------------------------------------------------------------------------------
# finding
# --------------------------------------------------------------------------------------------------------------


def is_image_file(path: str | os.PathLike, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> bool:
    """True when the file name ends with one of ``extensions`` (case-insensitive) and is not hidden."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in tuple(extensions)


def walk_visible(root: Path, recursive: bool = True) -> Iterator[tuple[Path, list[str]]]:
    """``(folder relative to root, its file names)`` for ``root`` and, if ``recursive``, every sub-folder whose name
    does not start with ``.``; symlinked folders are followed, each real folder once (a link cycle cannot loop)."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        yield Path(dirpath).relative_to(root), filenames


def list_images(
    root: str | os.PathLike, recursive: bool = True, extensions: Iterable[str] = IMAGE_EXTENSIONS
) -> list[Path]:
    """All image files under ``root``, sorted by their path relative to ``root`` (so the order, and any split
    made from it, is the same on every machine).

    Hidden files and folders (name starting with ``.``, e.g. macOS ``._x.jpg`` resource forks or
    ``.ipynb_checkpoints``) are ignored. With ``recursive=True`` symlinked folders are followed (each real folder
    once, so a link cycle cannot loop).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
        NoImagesFoundError: (a ``ValueError``) no image file was found; the message names the folder and the
            extensions looked for.
    """
    root = Path(root).expanduser()
    extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"expected a folder of images, got the file {root}")
    found: list[tuple[str, Path]] = []
    if recursive:
        for rel_dir, filenames in walk_visible(root):
            for name in filenames:
                if is_image_file(name, extensions):
                    rel = rel_dir / name
                    found.append((rel.as_posix(), root / rel))
    else:
        for entry in os.scandir(root):
            if is_image_file(entry.name, extensions) and entry.is_file():
                found.append((entry.name, root / entry.name))
    if not found:
        where = "under" if recursive else "directly in"
        raise NoImagesFoundError(
            f"no images with extensions {', '.join(extensions)} found {where} {root}"
            + ("" if recursive else " (recursive=False: sub-folders were not searched)")
        )
    found.sort(key=lambda item: item[0])
    return [p for _, p in found]


# ------------------------------------------------------------------------------------------------------------
# the one rule that pairs an image with its mask files by name

#: a mask file is named ``<image stem>_mask<anything>.<image extension>`` (LaMa's ``photo_mask000.png``)
MASK_TAG = "_mask"


def mask_owner_stem(stem: str) -> str | None:
    """The image stem a mask stem belongs to: the part before its **last** ``_mask``; None without the tag.

    ``photo_mask001`` -> ``photo``; ``scan_mask_v2_mask001`` -> ``scan_mask_v2`` (the image may have ``_mask`` in its
    own name).
    """
    head, tag, _ = stem.rpartition(MASK_TAG)
    return head if tag and head else None


def split_images_and_masks(files: Iterable[Path]) -> tuple[list[Path], dict[Path, list[Path]]]:
    """Images, and each image's mask files (sorted), among ``files`` of one folder tree.

    A file is a mask when :func:`mask_owner_stem` names another file beside it (same folder, any image extension)
    and no file names it as its own owner; every other file is an image, whatever its name: ``scan_mask_v2.png``
    is a photo when ``scan_mask_v2_mask001.png`` is beside it, or alone. Images without masks are absent from the
    dict.
    """
    files = sorted(Path(p) for p in files)
    by_stem: dict[Path, Path] = {}
    for path in files:
        by_stem.setdefault(path.parent / path.stem, path)
    owner_of: dict[Path, Path] = {}
    for path in files:
        owner = mask_owner_stem(path.stem)
        if owner is not None and (path.parent / owner) in by_stem:
            owner_of[path] = by_stem[path.parent / owner]
    owners = set(owner_of.values())
    masks: dict[Path, list[Path]] = {}
    for mask, image in owner_of.items():
        if mask not in owners:
            masks.setdefault(image, []).append(mask)
    images = [p for p in files if p not in owner_of or p in owners]
    return images, {image: sorted(found) for image, found in masks.items()}
