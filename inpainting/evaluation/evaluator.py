"""The evaluation loop: every method on the same images and the same fixed masks, one row per result.

Everything is judged on uint8 composites (what would be saved to disk), so a network and a classical
baseline are compared on identical terms, and two runs on the same inputs give identical numbers.
Networks run on predict's path (:meth:`inpainting.inference.Inpainter.fill_batch`: the same output as
``inpainting.predict`` for the same image and mask, with equal-size crops batched); classical baselines run in worker processes (:class:`BaselinePool`).
Every method is handed the image with its hole pixels zeroed (none may see what it is scored against), and pairs
with no hole pixel or no known pixel are left out and reported (:func:`scorable_pairs`).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from inpainting.data.images import ImageReadError, check_mask_size, read_image_rgb, read_mask
from inpainting.errors import ConfigError, InputError
from inpainting.evaluation.baselines import OpenCVInpaint
from inpainting.evaluation.mask_sets import mask_set
from inpainting.evaluation.methods import Method
from inpainting.evaluation.metrics import area_bucket, fid_from_features, image_metrics
from inpainting.evaluation.standard import StandardMetrics
from inpainting.inference import Inpainter
from inpainting.models.vgg import DISTANCE_LAYERS, VGG16Features, distance_of_features, feature_distance_label

log = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "l1", "l1_hole")
STANDARD_COLUMNS = ("lpips_alex", "lpips_vgg")
ALL_SETS = "all"  # the FID key of all mask sets pooled
PAIRS_SET = "pairs"  # the mask set name of user-supplied image/mask pairs


@dataclass
class EvalImage:
    name: str
    image: np.ndarray  # uint8 H x W x 3
    masks: dict[str, list[np.ndarray]] = field(default_factory=dict)  # mask set -> masks for this image


#: The most pixels evaluation's resize may produce for one image (``2**26``, 192 MiB as uint8 RGB): resizing the
#: short side of a 2 x 1,500,000 strip to 256 would otherwise ask for a 147 GB array.
MAX_RESIZED_PIXELS = 1 << 26


def check_eval_size(image_size: int) -> None:
    """Refuse an ``image_size`` whose square alone is over :data:`MAX_RESIZED_PIXELS` (every image is kept in memory)."""
    if int(image_size) ** 2 > MAX_RESIZED_PIXELS:
        raise ConfigError(
            f"image_size={image_size} is too large for evaluation: at most {math.isqrt(MAX_RESIZED_PIXELS)} "
            "(the side of the square every image is resized and cropped to)"
        )


def resize_problem(height: int, width: int, image_size: int) -> str | None:
    """Why resizing a ``height x width`` image's short side to ``image_size`` is refused, or None.

    Downscaling never allocates more than the image already holds; upscaling (a thin strip, a tiny image) may
    produce at most :data:`MAX_RESIZED_PIXELS` pixels before the centre crop.
    """
    scale = image_size / max(min(height, width), 1)
    resized = round(height * scale) * round(width * scale)
    if resized > max(height * width, MAX_RESIZED_PIXELS):
        return (
            f"it is {width}x{height} (width x height): resizing its short side to {image_size} would make "
            f"{resized:,} pixels (at most {MAX_RESIZED_PIXELS:,}); crop it to a less elongated shape"
        )
    return None


def display_names(paths: Sequence[Path], root: Path | None = None) -> list[str]:
    """Table names: each path relative to ``root`` (default: the folder common to all) without its extension.

    ``sub1/a`` and ``sub2/a`` stay apart; names that would still clash (``a.png`` and ``a.jpg``) keep the extension.
    """
    absolute = [os.path.abspath(p) for p in paths]
    if root is None:
        root = Path(os.path.commonpath([os.path.dirname(p) for p in absolute])) if absolute else Path()
    relative = [Path(os.path.relpath(p, os.path.abspath(root))).as_posix() for p in absolute]
    stems = [str(Path(r).with_suffix("")) for r in relative]
    return [r if stems.count(s) > 1 else s for r, s in zip(relative, stems, strict=True)]


def load_images(paths: Sequence[Path], image_size: int) -> list[EvalImage]:
    """Read and centre-crop images to ``image_size`` (the validation transform); unreadable files are skipped."""
    check_eval_size(image_size)
    from inpainting.data.transforms import eval_transform  # albumentations: only when images are read

    transform = eval_transform(image_size)
    images = []
    for path, name in zip(paths, display_names(paths), strict=True):
        try:
            array = read_image_rgb(path)
        except ImageReadError as error:
            log.warning("skipping %s", error)
            continue
        problem = resize_problem(*array.shape[:2], image_size)
        if problem:
            log.warning("skipping %s: %s", path, problem)
            continue
        images.append(EvalImage(name, transform(image=array)["image"]))
    if not images:
        raise InputError(f"no readable images to evaluate among {len(paths)} files")
    return images


def attach_mask_sets(images: list[EvalImage], names: Sequence[str], masks_per_image: int, seed: int) -> None:
    """Give image j masks ``j*k .. j*k+k-1`` of each named set: fixed, seeded, identical on every machine."""
    if masks_per_image < 1:
        raise ConfigError(f"masks_per_image must be a positive integer, got {masks_per_image}")
    height, width = images[0].image.shape[:2]
    for name in names:
        masks = mask_set(name, len(images) * masks_per_image, height, width, seed=seed)
        for j, item in enumerate(images):
            item.masks[name] = masks[j * masks_per_image : (j + 1) * masks_per_image]


def load_pairs(
    pairs: Sequence[tuple[Path, Path]], image_size: int, root: Path | None = None
) -> list[EvalImage]:
    """User-supplied image + mask files (white = missing), resized and cropped together.

    Each pair is named after its mask file relative to ``root`` (``sub1/a_mask``), so pairs in different
    folders never share a row name. Images too elongated to resize (:func:`resize_problem`) are skipped, logged.
    """
    check_eval_size(image_size)
    from inpainting.data.transforms import eval_transform  # albumentations: only when images are read

    transform = eval_transform(image_size)
    images = []
    names = display_names([mask for _, mask in pairs], root)
    for (image_path, mask_path), name in zip(pairs, names, strict=True):
        image, mask = read_image_rgb(image_path), read_mask(mask_path)
        check_mask_size(image, mask, image_path, mask_path)
        problem = resize_problem(*image.shape[:2], image_size)
        if problem:
            log.warning("skipping the pair %s (%s): %s", name, image_path, problem)
            continue
        out = transform(image=image, mask=mask)
        images.append(EvalImage(name, out["image"], {PAIRS_SET: [out["mask"].astype(np.uint8)]}))
    if not images:
        raise InputError(
            f"no image/mask pair left to evaluate among {len(pairs)} pairs (see the lines above)"
        )
    return images


def _to_unit(batch: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div(255.0)


class FeatureMetrics:
    """The non-standard VGG16 distance and VGG feature FID, labelled as such wherever printed.

    One VGG16 pass per image gives both: the distance layers (relu1_2 ... relu4_3, :func:`feature_distance`'s
    formula) and relu5_3 averaged over positions (a 512-d descriptor for the Fréchet distance). The ground-truth
    images of a mask set go through the network once per set (:meth:`begin_set`), not once per method, while
    their features fit in ``cache_bytes``.
    """

    DISTANCE_LAYERS = DISTANCE_LAYERS

    def __init__(self, vgg: VGG16Features | None, cache_bytes: int = 2 << 30) -> None:
        self.distance_label = feature_distance_label(vgg) if vgg is not None else None
        self.fid_label = (
            f"FID on {self.distance_label.split(' feature')[0]} relu5_3 features (non-standard, not Inception FID)"
            if self.distance_label
            else None
        )
        self.vgg = None
        if vgg is not None:
            self.vgg = VGG16Features(layers=(*self.DISTANCE_LAYERS, "relu5_3"))
            self.vgg.load_state_dict(vgg.state_dict())
        self.cache_bytes = cache_bytes
        self._truth: list[dict[str, Tensor]] | None = None
        self._owners: np.ndarray | None = None
        self._real: list[np.ndarray] = []
        self._fake: dict[str, list[np.ndarray]] = defaultdict(list)

    @torch.no_grad()
    def _features(self, images: Tensor) -> dict[str, Tensor]:
        return self.vgg(images.float())

    def begin_set(self, truth: Tensor, owners: np.ndarray, batch_size: int) -> None:
        """Features of a set's distinct ground-truth images ``truth``; pair ``i`` shows image ``owners[i]``."""
        if self.vgg is None:
            return
        per_image = sum(
            c * truth.shape[-2] * truth.shape[-1] // 4**k * 4 for k, c in enumerate((64, 128, 256, 512))
        )
        chunks = [self._features(truth[i : i + batch_size]) for i in range(0, len(truth), batch_size)]
        pooled = torch.cat([c["relu5_3"].mean(dim=(2, 3)) for c in chunks]).double().numpy()
        self._real.append(pooled[owners])
        keep = per_image * len(truth) <= self.cache_bytes
        self._truth = [
            {k: c[k][j] for k in self.DISTANCE_LAYERS} for c in chunks for j in range(len(c["relu5_3"]))
        ]
        self._truth = self._truth if keep else None
        self._truth_images, self._owners = truth, owners

    def update(self, method: str, pred: Tensor, batch_size: int) -> np.ndarray | None:
        """Per-pair distances of ``pred`` (pairs of the current set) and its pooled features for the FID."""
        if self.vgg is None:
            return None
        distances, pooled = [], []
        for start in range(0, len(pred), batch_size):
            fx = self._features(pred[start : start + batch_size])
            owners = self._owners[start : start + batch_size]
            if self._truth is not None:
                fy = {k: torch.stack([self._truth[o][k] for o in owners]) for k in self.DISTANCE_LAYERS}
            else:
                fy = self._features(self._truth_images[torch.from_numpy(owners)])
            distances.append(distance_of_features(fx, fy, self.DISTANCE_LAYERS))
            pooled.append(fx["relu5_3"].mean(dim=(2, 3)))
        self._fake[method].append(torch.cat(pooled).double().numpy())
        return torch.cat(distances).double().numpy()

    def fid(self) -> dict[str, float]:
        if not self._real:
            return {}
        real = np.concatenate(self._real)
        return {name: fid_from_features(np.concatenate(parts), real) for name, parts in self._fake.items()}


def _apply(
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray], image: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """One baseline call in a worker process, single-threaded (the parallelism is across processes)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    cv2.setNumThreads(1)
    return fn(image, mask)


def _warm_up() -> None:
    """Import the baselines' modules in a fresh worker (seconds on a loaded machine: the package imports torch)."""
    import inpainting.evaluation.baselines  # noqa: F401


class BaselinePool:
    """Worker processes for the classical baselines (CPU-bound, one image per call, no shared state).

    Reused for every method and set; ``workers <= 1`` runs in this process. ``spawn`` children: forking a process
    whose torch/OpenMP threads have run can deadlock. :meth:`start` brings the workers up (and logs how long that
    took) before anything is timed, so the progress estimates measure the methods only.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        if self.workers <= 1 or self._pool is not None:
            return
        started = time.perf_counter()
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        for future in [self._pool.submit(_warm_up) for _ in range(self.workers)]:
            future.result()
        log.info(
            "started %d baseline worker processes in %.1f s", self.workers, time.perf_counter() - started
        )

    def map(self, fn: Callable, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        if self.workers <= 1 or len(images) < 2:
            return np.stack([fn(image, mask) for image, mask in zip(images, masks, strict=True)])
        self.start()
        chunk = max(1, len(images) // (4 * self.workers))
        return np.stack(list(self._pool.map(_apply, repeat(fn), images, masks, chunksize=chunk)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def run_method(
    method: Method, images: np.ndarray, masks: np.ndarray, batch_size: int, pool: BaselinePool | None = None
) -> np.ndarray:
    """Composites for ``N`` images: networks batched on predict's path, baselines in worker processes."""
    if isinstance(method.inpaint, Inpainter):
        return method.inpaint.fill_batch(images, masks, batch_size)
    if not needs_workers(method):
        return BaselinePool(1).map(method.inpaint, images, masks)
    return (pool or BaselinePool(1)).map(method.inpaint, images, masks)


def needs_workers(method: Method) -> bool:
    """Worth a worker process: every baseline but OpenCV's (milliseconds per image, less than shipping it)."""
    return not isinstance(method.inpaint, Inpainter | OpenCVInpaint)


class ProgressLog:
    """One log line per (method, mask set) with the time it took and an estimate of the time left.

    The estimate multiplies the pairs still to do by each method's measured seconds per pair (the mean over
    measured methods for one not yet run), so it settles after every method has run once.
    """

    def __init__(self, methods: Sequence[str], pairs_per_set: Sequence[int]) -> None:
        self.total = {m: sum(pairs_per_set) for m in methods}
        self.done = dict.fromkeys(methods, 0)
        self.seconds = dict.fromkeys(methods, 0.0)
        self.start = time.perf_counter()
        self.steps, self.step = len(methods) * len(pairs_per_set), 0

    def update(self, method: str, set_name: str, pairs: int, seconds: float) -> str:
        self.step += 1
        self.done[method] += pairs
        self.seconds[method] += seconds
        rates = {m: self.seconds[m] / self.done[m] for m in self.done if self.done[m]}
        mean = sum(rates.values()) / len(rates)
        left = sum((self.total[m] - self.done[m]) * rates.get(m, mean) for m in self.total)
        line = (
            f"[{self.step}/{self.steps}] {method} on {set_name}: {pairs} pairs in {seconds:.1f} s "
            f"({seconds / max(pairs, 1):.2f} s/pair); elapsed {_clock(time.perf_counter() - self.start)}, "
            f"about {_clock(left)} left"
        )
        log.info(line)
        return line


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass
class EvalResult:
    """Rows (one per image x mask x method), sample composites per set, FID per (method, set) and pooled."""

    rows: list[dict]
    grids: dict[str, dict[str, np.ndarray]]
    fid: dict[tuple[str, str], float] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)  # "name: why" of each pair that could not be scored


def evaluate(
    images: list[EvalImage],
    methods: Sequence[Method],
    features: FeatureMetrics | None = None,
    batch_size: int = 8,
    keep_outputs: int = 4,
    standard: StandardMetrics | None = None,
    workers: int = 1,
) -> EvalResult:
    """Evaluate every method on every (image, mask) pair.

    Returns rows (image, mask_set, mask_index, hole_fraction, bucket, method, metrics...), per mask set the
    first ``keep_outputs`` composites of each method for sample grids (plus "input" and "ground truth"), and,
    when ``standard`` has the Inception network, FID per (method, set) and per (method, "all") over all sets.
    """
    rows: list[dict] = []
    grids: dict[str, dict[str, np.ndarray]] = {}
    scored, left_out = scorable_pairs(images)
    set_names = [name for name, entries in scored.items() if entries]
    progress = ProgressLog([m.name for m in methods], [len(scored[s]) for s in set_names])
    use_fid = standard is not None and standard.inception is not None
    fake_features: dict[str, list[np.ndarray]] = defaultdict(list)
    real_features: list[np.ndarray] = []
    fid: dict[tuple[str, str], float] = {}
    pool = BaselinePool(workers)
    index = {id(item): j for j, item in enumerate(images)}
    try:
        if any(needs_workers(m) for m in methods):
            pool.start()
        for set_name in set_names:
            entries = scored[set_name]
            truth = np.stack([item.image for item, _, _ in entries])
            masks = np.stack([m for _, _, m in entries]).astype(np.uint8)
            visible = np.where(masks[..., None] != 0, np.uint8(0), truth)  # no method sees a hidden pixel
            fractions = masks.reshape(len(masks), -1).mean(axis=1, dtype=np.float64)
            target = _to_unit(truth)
            mask_t = torch.from_numpy(masks[:, None].astype(np.float32))
            real = standard.inception_features(truth, batch_size) if use_fid else None
            if features is not None:
                owners = np.array([index[id(item)] for item, _, _ in entries])
                features.begin_set(_to_unit(np.stack([item.image for item in images])), owners, batch_size)
            if real is not None:
                real_features.append(real)
            grids[set_name] = {
                "input": np.where(masks[:keep_outputs, ..., None] != 0, 255, truth[:keep_outputs]).astype(
                    np.uint8
                ),
                "ground truth": truth[:keep_outputs],
            }
            for method in methods:
                started = time.perf_counter()
                outputs = run_method(method, visible, masks, batch_size, pool)
                grids[set_name][method.name] = outputs[:keep_outputs]
                pred = _to_unit(outputs)
                values = {k: v.double().numpy() for k, v in image_metrics(pred, target, mask_t).items()}
                if standard is not None:
                    values.update(standard.lpips_distances(pred, target, batch_size))
                if real is not None:
                    fake = standard.inception_features(outputs, batch_size)
                    fake_features[method.name].append(fake)
                    fid[(method.name, set_name)] = fid_from_features(fake, real)
                distance = features.update(method.name, pred, batch_size) if features is not None else None
                columns = [name for name in (*METRICS, *STANDARD_COLUMNS) if name in values]
                for i, (item, k, _) in enumerate(entries):
                    row = {
                        "image": item.name,
                        "mask_set": set_name,
                        "mask_index": k,
                        "hole_fraction": round(float(fractions[i]), 6),
                        "bucket": area_bucket(float(fractions[i])),
                        "method": method.name,
                        **{name: float(values[name][i]) for name in columns},
                    }
                    if distance is not None:
                        row["feature_distance"] = float(distance[i])
                    rows.append(row)
                progress.update(method.name, set_name, len(entries), time.perf_counter() - started)
    finally:
        pool.close()
    if use_fid and len(set_names) > 1:
        real_all = np.concatenate(real_features)
        for name, parts in fake_features.items():
            fid[(name, ALL_SETS)] = fid_from_features(np.concatenate(parts), real_all)
    return EvalResult(rows, grids, fid, left_out)


def scorable_pairs(
    images: list[EvalImage],
) -> tuple[dict[str, list[tuple[EvalImage, int, np.ndarray]]], list[str]]:
    """Per mask set the ``(image, mask index, mask)`` pairs that can be scored, and ``name: why`` for the rest.

    A mask with no hole pixel leaves nothing to fill (every method would score a perfect 100 dB); one without a known
    pixel leaves nothing to fill from (the metric would only measure a guess). Each is logged on one line and left
    out of the tables; with none left, an InputError.
    """
    scored: dict[str, list[tuple[EvalImage, int, np.ndarray]]] = {}
    left_out: list[str] = []
    for set_name in images[0].masks:
        scored[set_name] = []
        for item in images:
            for k, mask in enumerate(item.masks[set_name]):
                holes = np.count_nonzero(mask)
                why = None
                if holes == 0:
                    why = "no hole pixel (white = missing) after resizing and centre-cropping"
                elif holes == mask.size:
                    why = "no known pixel: the whole image is a hole, nothing to inpaint from"
                if why is None:
                    scored[set_name].append((item, k, mask))
                    continue
                pair = item.name if set_name == PAIRS_SET else f"{item.name} (mask set {set_name} #{k})"
                left_out.append(f"{pair}: {why}")
                log.warning("left out of the tables: %s", left_out[-1])
    if not any(scored.values()):
        raise InputError(
            f"no image/mask pair can be scored: all {len(left_out)} were left out (first: {left_out[0]})"
        )
    return scored, left_out
