"""The embedded default dataset: colour photos that ship inside installed packages, so the quick default run
(``data=sample``) needs no download.

Sources (located through the packages' install folders, never the network; a missing one is skipped):

=====================================  ===========================================================  =================
file written                           origin                                                       licence
=====================================  ===========================================================  =================
skimage-astronaut.png                  scikit-image ``skimage/data`` (NASA, Eileen Collins)         public domain
skimage-chelsea.png                    scikit-image (cat, Stefan van der Walt)                      CC0
skimage-coffee.png                     scikit-image (Rachel Michetti)                               CC0
skimage-rocket.jpg                     scikit-image (SpaceX)                                        public domain
skimage-hubble_deep_field.jpg          scikit-image (NASA)                                          public domain
skimage-retina.jpg                     scikit-image (Mikael Häggström)                              CC0
skimage-motorcycle_left.png            scikit-image (Middlebury 2014 stereo)                        see skimage docs
skimage-immunohistochemistry.png       scikit-image ``ihc.png`` (microscopy, CMMI)                  no known restr.
sklearn-china.jpg                      scikit-learn ``sklearn/datasets/images``                     CC BY 2.0
sklearn-flower.jpg                     scikit-learn ``sklearn/datasets/images``                     CC BY 2.0
matplotlib-grace_hopper.jpg            matplotlib ``mpl-data/sample_data``                          public domain
=====================================  ===========================================================  =================

Left out on purpose: scikit-image's greyscale textures (brick, grass, gravel, camera, ...) and synthetic charts
(``color.png``, chessboards), and ``motorcycle_right.png``, a near-duplicate of the left stereo view that a random
train/val split could put on both sides (leaking the validation picture into training).

Files are copied byte for byte (no re-encoding); an ``ATTRIBUTION.txt`` next to them records the sources.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("inpainting.data")

#: (package, path inside the package's folder, file name written, attribution)
SAMPLE_SOURCES: tuple[tuple[str, str, str, str], ...] = (
    ("skimage", "data/astronaut.png", "skimage-astronaut.png", "NASA (Eileen Collins), public domain"),
    ("skimage", "data/chelsea.png", "skimage-chelsea.png", "Stefan van der Walt, CC0"),
    ("skimage", "data/coffee.png", "skimage-coffee.png", "Rachel Michetti, CC0"),
    ("skimage", "data/rocket.jpg", "skimage-rocket.jpg", "SpaceX, public domain"),
    ("skimage", "data/hubble_deep_field.jpg", "skimage-hubble_deep_field.jpg", "NASA, public domain"),
    ("skimage", "data/retina.jpg", "skimage-retina.jpg", "Mikael Haggstrom, CC0"),
    (
        "skimage",
        "data/motorcycle_left.png",
        "skimage-motorcycle_left.png",
        "Middlebury 2014 stereo benchmark (Scharstein et al.), via scikit-image",
    ),
    ("skimage", "data/ihc.png", "skimage-immunohistochemistry.png", "CMMI, no known copyright restrictions"),
    ("sklearn", "datasets/images/china.jpg", "sklearn-china.jpg", "danielbuechele on Flickr, CC BY 2.0"),
    ("sklearn", "datasets/images/flower.jpg", "sklearn-flower.jpg", "vultilion on Flickr, CC BY 2.0"),
    (
        "matplotlib",
        "mpl-data/sample_data/grace_hopper.jpg",
        "matplotlib-grace_hopper.jpg",
        "US Navy, public domain",
    ),
)


def _package_dir(package: str) -> Path | None:
    """The install folder of ``package`` without importing it (importing scikit-learn takes seconds)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _matplotlib_sample(name: str) -> Path | None:
    try:
        from matplotlib import cbook

        return Path(cbook.get_sample_data(name, asfileobj=False))
    except Exception:  # matplotlib missing, or a build without sample data
        return None


def sample_sources() -> list[tuple[Path, str, str]]:
    """``(source file, name to write, attribution)`` for every embedded photo present in this environment."""
    found = []
    for package, rel, out_name, credit in SAMPLE_SOURCES:
        src: Path | None = None
        if package == "matplotlib":
            src = _matplotlib_sample(Path(rel).name)
        if src is None or not src.is_file():
            base = _package_dir(package)
            src = base / rel if base is not None else None
        if src is not None and src.is_file():
            found.append((src, out_name, f"{out_name}: {credit} (copied from {package}: {rel})"))
        else:
            log.debug("sample photo %s not found in package %s; skipped", rel, package)
    return found


def _atomic_copy(src: Path, dst: Path) -> None:
    """Copy through a hidden temporary file + rename, so concurrent writers (DDP ranks) never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_sample_images(root: str | os.PathLike) -> list[Path]:
    """Copy the embedded sample photos into ``root`` (created if needed) and return their paths, sorted.

    Idempotent: files already present are left untouched. Raises ``FileNotFoundError`` when none of the source
    photos is installed (scikit-image, scikit-learn and matplotlib are all dependencies of this package).
    """
    root = Path(root).expanduser()
    sources = sample_sources()
    if not sources:
        raise FileNotFoundError(
            "no embedded sample photos found: install scikit-image, scikit-learn or matplotlib "
            "(e.g. `pip install scikit-image`), or point data.root at a folder of your own images"
        )
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for src, out_name, _ in sources:
        dst = root / out_name
        if not dst.exists():
            _atomic_copy(src, dst)
        written.append(dst)
    attribution = root / "ATTRIBUTION.txt"
    if not attribution.exists():
        text = "Sample photos copied from installed Python packages by inpainting.data.sample:\n" + "".join(
            f"- {line}\n" for _, _, line in sources
        )
        tmp = root / f".ATTRIBUTION.txt.{os.getpid()}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, attribution)
    log.info("sample dataset: %d photos in %s", len(written), root)
    return sorted(written)
