"""Mask generators: callables ``gen(rng, height, width) -> uint8 (height, width)`` mask, 1 = missing (hole).

Every generator takes all of its randomness from the ``rng`` argument (a ``numpy.random.Generator``), never
from global numpy/``random`` state, so ``numpy.random.default_rng((seed, index))`` yields the same mask for
the same image in every run, on every machine and under any DataLoader worker count.

Sizes are given in pixels at a reference resolution (``reference_size``, default 256) and scaled by
``min(height, width) / reference_size``, so one config gives masks of the same relative coverage at any image
size (``reference_size=None`` disables scaling: parameters are then raw pixels, exactly as the source papers
use them).

Constructor arguments are primitives or other generators only, so every class can be built by Hydra from a
yaml node with ``_target_`` (see ``conf/mask/*.yaml``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from inpainting.data.images import IMAGE_EXTENSIONS, is_image_file, read_mask

MaskGenerator = Callable[[np.random.Generator, int, int], np.ndarray]


# ------------------------------------------------------------------------------------------------------------
# validation helpers: fail at construction, naming the offending argument, not deep inside a DataLoader worker


def _check_min(name: str, value: float, minimum: float) -> None:
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")


def _check_range(min_name: str, lo: float, max_name: str, hi: float, minimum: float = 0) -> None:
    _check_min(min_name, lo, minimum)
    _check_min(max_name, hi, minimum)
    if lo > hi:
        raise ValueError(f"{min_name} ({lo!r}) must be <= {max_name} ({hi!r})")


def _check_reference_size(reference_size: int | None) -> None:
    if reference_size is not None and reference_size <= 0:
        raise ValueError(f"reference_size must be a positive int or None, got {reference_size!r}")


def _blank(height: int, width: int) -> np.ndarray:
    """An all-valid mask; also rejects sizes that cannot hold a mask."""
    if int(height) != height or int(width) != width or height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive ints, got {height!r} x {width!r}")
    return np.zeros((int(height), int(width)), np.uint8)


def _scale(height: int, width: int, reference_size: int | None) -> float:
    """Factor that maps pixel parameters given at ``reference_size`` to this image size."""
    return 1.0 if reference_size is None else min(height, width) / reference_size


def _random_flip(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Flip left-right and top-bottom, each with probability 1/2 (as DeepFill v2 does for its strokes)."""
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    if rng.random() < 0.5:
        mask = mask[::-1]
    return np.ascontiguousarray(mask)


# ------------------------------------------------------------------------------------------------------------
# shape generators


class BrushStrokeMask:
    """Free-form brush strokes, the DeepFill v2 algorithm.

    Yu et al. 2019, "Free-Form Image Inpainting with Gated Convolution", appendix (reference code
    JiahuiYu/generative_inpainting, ``brush_stroke_mask``). Each stroke is a polyline from a uniform start
    point through ``min_vertices..max_vertices`` further vertices (DeepFill's ``num_vertex``); step directions
    alternate between about -``mean_angle`` and +``mean_angle`` (+- ``angle_range``), a zig-zag; steps have
    length ~ N(r, r/2) clipped to [0, 2r] with r = ``mean_length`` x image diagonal; the brush width is
    uniform in [min_width, max_width] and circles at the joints round the corners. Defaults are DeepFill v2's:
    1-3 strokes, 4-11 vertices, mean angle 2*pi/5, angle range 2*pi/15, width 12-40 px at 256 px,
    r = diagonal / 8, random flips.

    Step lengths scale with the diagonal (as in DeepFill); widths are pixels at ``reference_size``.
    """

    def __init__(
        self,
        min_strokes: int = 1,
        max_strokes: int = 3,
        min_vertices: int = 4,
        max_vertices: int = 11,
        mean_angle: float = 2 * math.pi / 5,
        angle_range: float = 2 * math.pi / 15,
        min_width: float = 12.0,
        max_width: float = 40.0,
        mean_length: float = 0.125,
        reference_size: int | None = 256,
        flip: bool = True,
    ) -> None:
        _check_range("min_strokes", min_strokes, "max_strokes", max_strokes)
        _check_min("max_strokes", max_strokes, 1)
        _check_range("min_vertices", min_vertices, "max_vertices", max_vertices, minimum=1)
        _check_min("mean_angle", mean_angle, -math.inf)
        _check_min("angle_range", angle_range, 0)
        _check_range("min_width", min_width, "max_width", max_width, minimum=1e-9)
        _check_min("mean_length", mean_length, 1e-9)
        _check_reference_size(reference_size)
        self.min_strokes, self.max_strokes = int(min_strokes), int(max_strokes)
        self.min_vertices, self.max_vertices = int(min_vertices), int(max_vertices)
        self.mean_angle, self.angle_range = float(mean_angle), float(angle_range)
        self.min_width, self.max_width = float(min_width), float(max_width)
        self.mean_length = float(mean_length)
        self.reference_size = reference_size
        self.flip = bool(flip)

    def __call__(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        mask = _blank(height, width)
        scale = _scale(height, width, self.reference_size)
        radius = self.mean_length * math.hypot(height, width)
        for _ in range(int(rng.integers(self.min_strokes, self.max_strokes, endpoint=True))):
            self._stroke(rng, mask, radius, scale)
        return _random_flip(rng, mask) if self.flip else mask

    def _stroke(self, rng: np.random.Generator, mask: np.ndarray, radius: float, scale: float) -> None:
        height, width = mask.shape
        n = int(rng.integers(self.min_vertices, self.max_vertices, endpoint=True))
        lo = self.mean_angle - rng.uniform(0, self.angle_range)
        hi = self.mean_angle + rng.uniform(0, self.angle_range)
        angles = rng.uniform(lo, hi, size=n)
        angles[::2] = 2 * math.pi - angles[::2]  # alternate the direction's sign: a zig-zag, not a spiral
        steps = np.clip(rng.normal(radius, radius / 2, size=n), 0, 2 * radius)
        x, y = float(rng.integers(width)), float(rng.integers(height))
        points = [(int(x), int(y))]
        for angle, step in zip(angles, steps, strict=True):
            # clip each vertex before taking the next step, as DeepFill does (strokes slide along the border)
            x = min(max(x + step * math.cos(angle), 0.0), width - 1.0)
            y = min(max(y + step * math.sin(angle), 0.0), height - 1.0)
            points.append((int(x), int(y)))
        thickness = max(1, round(rng.uniform(self.min_width, self.max_width) * scale))
        for start, end in zip(points[:-1], points[1:], strict=True):
            cv2.line(mask, start, end, 1, thickness)
        for point in points:
            cv2.circle(mask, point, thickness // 2, 1, -1)


class BoxMask:
    """Random axis-aligned rectangles: the classic "centre/random box" inpainting benchmark shape.

    ``min_boxes..max_boxes`` boxes (inclusive); each side is uniform in ``[min_size, max_size]`` pixels and
    boxes keep ``margin`` pixels from the border, all at ``reference_size`` and scaled to the image. Sides
    that do not fit are shrunk to fit (and the margin too on tiny images), so any image size works.
    """

    def __init__(
        self,
        min_boxes: int = 1,
        max_boxes: int = 3,
        min_size: float = 30,
        max_size: float = 100,
        margin: float = 10,
        reference_size: int | None = 256,
    ) -> None:
        _check_range("min_boxes", min_boxes, "max_boxes", max_boxes)
        _check_min("max_boxes", max_boxes, 1)
        _check_range("min_size", min_size, "max_size", max_size, minimum=1)
        _check_min("margin", margin, 0)
        _check_reference_size(reference_size)
        self.min_boxes, self.max_boxes = int(min_boxes), int(max_boxes)
        self.min_size, self.max_size = float(min_size), float(max_size)
        self.margin = float(margin)
        self.reference_size = reference_size

    def __call__(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        mask = _blank(height, width)
        scale = _scale(height, width, self.reference_size)
        for _ in range(int(rng.integers(self.min_boxes, self.max_boxes, endpoint=True))):
            x0, x1 = self._span(rng, width, scale)
            y0, y1 = self._span(rng, height, scale)
            cv2.rectangle(mask, (x0, y0), (x1, y1), 1, thickness=-1)
        return mask

    def _span(self, rng: np.random.Generator, length: int, scale: float) -> tuple[int, int]:
        """First and last pixel of one box side along an axis of ``length`` pixels."""
        margin = min(round(self.margin * scale), (length - 1) // 2)
        room = length - 2 * margin
        hi = max(1, min(round(self.max_size * scale), room))
        lo = max(1, min(round(self.min_size * scale), hi))
        side = int(rng.integers(lo, hi, endpoint=True))
        start = int(rng.integers(margin, length - margin - side, endpoint=True))
        return start, start + side - 1


class LamaBoxMask(BoxMask):
    """LaMa's random rectangles under LaMa's argument names, so LaMa configs carry over unchanged.

    Suvorov et al. 2022, "Resolution-robust Large Mask Inpainting with Fourier Convolutions"
    (advimman/lama, ``saicinpainting/training/data/masks.py``, ``make_random_rectangle_mask``); defaults are
    LaMa's. One difference: our ``bbox_max_size`` is inclusive (LaMa's ``randint`` excludes it), one pixel.
    """

    def __init__(
        self,
        margin: float = 10,
        bbox_min_size: float = 30,
        bbox_max_size: float = 100,
        min_times: int = 0,
        max_times: int = 3,
        reference_size: int | None = 256,
    ) -> None:
        # validated here too so that errors name LaMa's argument names, not BoxMask's
        _check_range("bbox_min_size", bbox_min_size, "bbox_max_size", bbox_max_size, minimum=1)
        _check_range("min_times", min_times, "max_times", max_times)
        _check_min("max_times", max_times, 1)
        super().__init__(min_times, max_times, bbox_min_size, bbox_max_size, margin, reference_size)


class LamaIrregularMask:
    """LaMa's irregular masks: thick random polylines ("irregular_kwargs" in LaMa configs).

    Suvorov et al. 2022 (advimman/lama, ``make_random_irregular_mask``), the same distribution: ``min_times..
    max_times`` strokes from uniform starts, each of 1-5 segments with angle 0.01 + randint(max_angle) radians
    (integer radians, as in LaMa; mirrored to 2*pi - angle on even strokes), length 10 + randint(max_len) and
    width 5 + randint(max_width) pixels, segment ends clipped to the image. Defaults are LaMa's generator
    defaults; the evaluation presets are ``conf/mask/lama_*.yaml``. Pixel values are at ``reference_size`` and scaled
    to the image.
    """

    def __init__(
        self,
        max_angle: int = 4,
        max_len: int = 60,
        max_width: int = 20,
        min_times: int = 0,
        max_times: int = 10,
        reference_size: int | None = 256,
    ) -> None:
        for name, value in (("max_angle", max_angle), ("max_len", max_len), ("max_width", max_width)):
            _check_min(name, value, 1)
            if int(value) != value:
                raise ValueError(f"{name} must be an int (LaMa draws randint({name})), got {value!r}")
        _check_range("min_times", min_times, "max_times", max_times)
        _check_min("max_times", max_times, 1)
        _check_reference_size(reference_size)
        self.max_angle, self.max_len, self.max_width = int(max_angle), int(max_len), int(max_width)
        self.min_times, self.max_times = int(min_times), int(max_times)
        self.reference_size = reference_size

    def __call__(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        mask = _blank(height, width)
        scale = _scale(height, width, self.reference_size)
        for stroke in range(int(rng.integers(self.min_times, self.max_times, endpoint=True))):
            x, y = int(rng.integers(width)), int(rng.integers(height))
            n = 1 + int(rng.integers(5))
            angles = 0.01 + rng.integers(self.max_angle, size=n)
            if stroke % 2 == 0:
                angles = 2 * math.pi - angles
            lengths = (10 + rng.integers(self.max_len, size=n)) * scale
            widths = np.maximum(1, np.rint((5 + rng.integers(self.max_width, size=n)) * scale)).astype(int)
            for angle, length, thickness in zip(angles, lengths, widths, strict=True):
                # LaMa's convention: x moves with sin, y with cos
                end_x = min(max(int(x + length * math.sin(angle)), 0), width)
                end_y = min(max(int(y + length * math.cos(angle)), 0), height)
                cv2.line(mask, (x, y), (end_x, end_y), 1, int(thickness))
                x, y = end_x, end_y
        return mask


# ------------------------------------------------------------------------------------------------------------
# combinators


class MixedMask:
    """Picks one of ``generators`` per call with the given (re-normalised) probabilities.

    This is also how LaMa combines its irregular and box masks (``MixedMaskGenerator``: one kind per mask, the
    probabilities need not sum to 1).
    """

    def __init__(self, generators: Sequence[MaskGenerator], probabilities: Sequence[float]) -> None:
        generators, probabilities = list(generators), [float(p) for p in probabilities]
        if not generators:
            raise ValueError("MixedMask: generators must not be empty")
        if len(generators) != len(probabilities):
            raise ValueError(
                f"MixedMask: probabilities has {len(probabilities)} entries but generators has "
                f"{len(generators)}; give one probability per generator"
            )
        if any(not math.isfinite(p) or p < 0 for p in probabilities):
            raise ValueError(f"MixedMask: probabilities must be finite and >= 0, got {probabilities}")
        if sum(probabilities) <= 0:
            raise ValueError(f"MixedMask: probabilities must have a positive sum, got {probabilities}")
        for i, gen in enumerate(generators):
            if not callable(gen):
                raise ValueError(f"MixedMask: generators[{i}] is not callable: {gen!r}")
        self.generators = generators
        self.probabilities = np.asarray(probabilities) / sum(probabilities)

    def __call__(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        index = int(rng.choice(len(self.generators), p=self.probabilities))
        return self.generators[index](rng, height, width)


class AreaFilteredMask:
    """Redraws ``generator`` until the hole fraction lies in ``[min_fraction, max_fraction]``.

    Keeps training away from near-empty and near-full masks (LaMa drops eval masks covering more than half the
    image, ``max_tamper_area: 0.5`` in ``configs/data_gen``). Rejection sampling keeps the generator's shapes
    intact; if ``max_tries`` draws all miss, a RuntimeError says so rather than silently returning a bad mask.
    """

    def __init__(
        self,
        generator: MaskGenerator,
        min_fraction: float = 0.0,
        max_fraction: float = 1.0,
        max_tries: int = 100,
    ) -> None:
        if not callable(generator):
            raise ValueError(f"AreaFilteredMask: generator is not callable: {generator!r}")
        if not 0 <= min_fraction <= max_fraction <= 1:
            raise ValueError(
                f"AreaFilteredMask: need 0 <= min_fraction <= max_fraction <= 1, got "
                f"min_fraction={min_fraction!r}, max_fraction={max_fraction!r}"
            )
        _check_min("max_tries", max_tries, 1)
        self.generator = generator
        self.min_fraction, self.max_fraction = float(min_fraction), float(max_fraction)
        self.max_tries = int(max_tries)

    def __call__(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        seen: list[float] = []
        for _ in range(self.max_tries):
            mask = self.generator(rng, height, width)
            fraction = np.count_nonzero(mask) / mask.size
            if self.min_fraction <= fraction <= self.max_fraction:
                return mask
            seen.append(fraction)
        raise RuntimeError(
            f"AreaFilteredMask: no mask with hole fraction in [{self.min_fraction}, {self.max_fraction}] "
            f"after {self.max_tries} draws at {height}x{width} (drawn fractions ranged "
            f"{min(seen):.3f}..{max(seen):.3f}); loosen min_fraction/max_fraction, raise max_tries, "
            "or change the generator's sizes"
        )


# ------------------------------------------------------------------------------------------------------------
# masks from files


class FolderMask:
    """Masks read from a folder of images (searched recursively); pixels above ``threshold`` are holes.

    Lets fixed mask sets (e.g. the NVIDIA irregular masks of Liu et al. 2018, or LaMa's generated eval masks)
    be used with any image size: ``rng`` picks the file, which is resized with nearest neighbour to (height,
    width) and optionally flipped. ``threshold`` is on the 8-bit scale (16-bit files compare against
    ``threshold * 257``); ``invert=True`` reads black as missing. Files are listed once and read lazily.
    """

    def __init__(self, root: str, threshold: int = 127, invert: bool = False, flip: bool = False) -> None:
        if not 0 <= threshold < 255:
            raise ValueError(f"FolderMask: threshold must be in [0, 255), got {threshold!r}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"FolderMask: mask folder {str(self.root)!r} does not exist or is not a folder"
            )
        self.files = sorted(p for p in self.root.rglob("*") if is_image_file(p) and p.is_file())
        if not self.files:
            raise FileNotFoundError(
                f"FolderMask: no mask images found under {str(self.root)!r} (searched recursively for "
                f"{', '.join(IMAGE_EXTENSIONS)})"
            )
        self.threshold, self.invert, self.flip = int(threshold), bool(invert), bool(flip)

    def __len__(self) -> int:
        return len(self.files)

    def __call__(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        _blank(height, width)  # validate the size before any file is read
        path = self.files[int(rng.integers(len(self.files)))]
        mask = self._holes(path)
        if mask.shape != (height, width):
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        return _random_flip(rng, mask) if self.flip else mask

    def _holes(self, path: Path) -> np.ndarray:
        """Binary holes of one file, 1 = missing, at the file's own size (read as every mask is: ``read_mask``)."""
        holes = read_mask(path, threshold=self.threshold)
        return 1 - holes if self.invert else holes
