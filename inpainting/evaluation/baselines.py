"""Classical (non-learned) inpainting baselines behind one interface.

Every baseline is a callable ``method(image, mask) -> image``:

* ``image``: ``uint8`` ``H x W x 3`` RGB;
* ``mask``: ``uint8`` (or bool) ``H x W``, non-zero = missing (the framework writes 1 = missing);
* returns ``uint8`` ``H x W x 3`` in which every pixel outside the hole is bit-identical to ``image``.

The last point is enforced here by pasting the known pixels back, not left to each library, so a table that
compares these methods with a network's composite compares the holes only. Each factory returns a small picklable
object (so an evaluator can ship it to worker processes) and is usable from Hydra as ``_target_:
inpainting.evaluation.baselines.telea``. Plain names are in :data:`BASELINES`; :func:`get_baseline` builds one by name.

Speed: Telea against the network in docs/benchmarks.md, "Predict latency"; every baseline's seconds per pair in
"Evaluator speed". Biharmonic solves a sparse linear system over every hole pixel, so its cost grows quickly with
hole area and image size; Telea and Navier-Stokes are the fastest of them and PatchMatch the slowest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import cv2
import numpy as np

from inpainting.errors import ConfigError, MissingExtraError

Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]

PATCHMATCH_PIP = "pypatchmatch"


def _check_inputs(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate the shared contract and return ``(contiguous image, bool hole map)``."""
    image, mask = np.asarray(image), np.asarray(mask)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image must be a uint8 H x W x 3 array, got shape {image.shape} and dtype {image.dtype}"
        )
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be H x W = {image.shape[:2]} like the image, got shape {mask.shape}")
    if mask.dtype != np.bool_ and mask.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 (non-zero = missing) or bool, got dtype {mask.dtype}")
    return np.ascontiguousarray(image), mask != 0


def _paste_known(image: np.ndarray, holes: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Known pixels from ``image``, hole pixels from ``filled``: the result differs from the input only in holes."""
    return np.where(holes[..., None], filled, image).astype(np.uint8)


@dataclass(frozen=True)
class OpenCVInpaint:
    """OpenCV's ``cv2.inpaint``: fast-marching (Telea 2004) or fluid-dynamics (Bertalmio et al. 2001) filling.

    Both work per channel, so RGB vs BGR order does not matter. ``radius`` is the neighbourhood (pixels) that
    each newly filled pixel is estimated from.
    """

    method: str = "telea"
    radius: float = 3.0

    def __post_init__(self) -> None:
        if self.method not in ("telea", "navier_stokes"):
            raise ValueError(f"OpenCVInpaint: method must be 'telea' or 'navier_stokes', got {self.method!r}")
        if not self.radius > 0:
            raise ValueError(f"OpenCVInpaint: radius must be > 0, got {self.radius!r}")

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        image, holes = _check_inputs(image, mask)
        if not holes.any():
            return image.copy()
        flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
        filled = cv2.inpaint(image, holes.astype(np.uint8), float(self.radius), flag)
        return _paste_known(image, holes, filled)


@dataclass(frozen=True)
class BiharmonicInpaint:
    """scikit-image's biharmonic inpainting (Damelin & Hoang 2018): smooth fill solving a biharmonic equation.

    Slow on big images and large holes (one sparse solve over all hole pixels); fine for 256 x 256 tables.
    """

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from skimage.restoration import inpaint_biharmonic  # imported here: skimage is slow to import

        image, holes = _check_inputs(image, mask)
        if not holes.any():
            return image.copy()
        filled = inpaint_biharmonic(image.astype(np.float64) / 255.0, holes, channel_axis=-1)
        filled = np.clip(np.rint(filled * 255.0), 0, 255).astype(np.uint8)
        return _paste_known(image, holes, filled)


@dataclass(frozen=True)
class PatchMatchInpaint:
    """PatchMatch (Barnes et al. 2009) through the ``pypatchmatch`` package's prebuilt native library.

    ``patch_size`` is the patch *radius* (patches span ``(2r + 1)^2`` pixels; larger follows bigger structure but
    is much slower). The native search is randomised; ``seed`` is set before every call so a result depends only
    on (image, mask), as the evaluation tables need.
    """

    patch_size: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        _import_patchmatch()  # fail at construction, with the install hint, not at the first image
        if int(self.patch_size) != self.patch_size or self.patch_size < 1:
            raise ValueError(f"PatchMatchInpaint: patch_size must be an int >= 1, got {self.patch_size!r}")

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        pm = _import_patchmatch()
        image, holes = _check_inputs(image, mask)
        if not holes.any():
            return image.copy()
        pm.set_random_seed(int(self.seed))
        filled = pm.inpaint(image, holes.astype(np.uint8), patch_size=int(self.patch_size))
        return _paste_known(image, holes, filled)


@dataclass(frozen=True)
class PushPullInpaint:
    """Push-pull pyramid fill (Gortler et al. 1996), the parameter-free first guess that ``fill_prior`` networks
    start from (``inpainting.models.fill_prior``); in the tables it shows what the network adds on top of it."""

    levels: int = 10
    relax: int = (
        0  # Jacobi sweeps per level towards the harmonic fill (what ``fill_prior_relax`` networks use)
    )

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import torch

        from inpainting.models.fill_prior import push_pull_fill

        image, holes = _check_inputs(image, mask)
        if not holes.any():
            return image.copy()
        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].double()
        hole_map = torch.from_numpy(holes)[None, None].double()
        filled = push_pull_fill(pixels, hole_map, self.levels, self.relax)[0].permute(1, 2, 0).numpy()
        return _paste_known(image, holes, np.clip(np.rint(filled), 0, 255))


def _import_patchmatch() -> ModuleType:
    """The ``patchmatch`` module with its native library loaded, or an ImportError saying how to get it."""
    try:
        import patchmatch as pm
    except ImportError as err:
        raise MissingExtraError(
            f"the 'patchmatch' baseline needs the PyPI package {PATCHMATCH_PIP!r} (prebuilt wheels, MIT): "
            f"pip install {PATCHMATCH_PIP}"
        ) from err
    if not getattr(pm, "patchmatch_available", False):
        raise MissingExtraError(
            f"the {PATCHMATCH_PIP!r} package is installed but its native library did not load (no wheel for this "
            f"platform?); reinstall it: pip install --force-reinstall --no-deps {PATCHMATCH_PIP}"
        )
    return pm


# ----------------------------------------------------------------------------------------------------------------
# factories: the plain names used in configs, tables and on the command line


def telea(radius: float = 3.0) -> OpenCVInpaint:
    """OpenCV fast-marching inpainting (Telea 2004)."""
    return OpenCVInpaint("telea", radius)


def navier_stokes(radius: float = 3.0) -> OpenCVInpaint:
    """OpenCV Navier-Stokes inpainting (Bertalmio, Bertozzi & Sapiro 2001)."""
    return OpenCVInpaint("navier_stokes", radius)


def biharmonic() -> BiharmonicInpaint:
    """scikit-image biharmonic inpainting (slow on large images, see the module docstring)."""
    return BiharmonicInpaint()


def patchmatch(patch_size: int = 3, seed: int = 0) -> PatchMatchInpaint:
    """PatchMatch inpainting; raises ImportError naming ``pypatchmatch`` if that package is missing."""
    return PatchMatchInpaint(patch_size, seed)


def push_pull(levels: int = 10, relax: int = 0) -> PushPullInpaint:
    """Push-pull pyramid fill (Gortler et al. 1996); see ``inpainting.models.fill_prior``."""
    return PushPullInpaint(levels, relax)


def harmonic(levels: int = 10, relax: int = 4) -> PushPullInpaint:
    """Push-pull relaxed towards the harmonic (Laplace) fill: the start of ``fill_prior_relax=4`` networks."""
    return PushPullInpaint(levels, relax)


#: Baseline factories by plain name; call one (or :func:`get_baseline`) to get an ``(image, mask)`` inpainter.
BASELINES: dict[str, Callable[..., Inpainter]] = {
    "telea": telea,
    "navier_stokes": navier_stokes,
    "biharmonic": biharmonic,
    "patchmatch": patchmatch,
    "push_pull": push_pull,
    "harmonic": harmonic,
}


def get_baseline(name: str, **kwargs: object) -> Inpainter:
    """Build the baseline ``name`` (keyword arguments go to its factory)."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; valid names: {', '.join(BASELINES)}")
    return BASELINES[name](**kwargs)
