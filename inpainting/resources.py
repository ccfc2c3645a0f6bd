"""Where the package's own files are: the ``conf/`` tree (inside the package when installed from a wheel, beside
it in a checkout) and the shipped weights."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """The Hydra config tree: ``inpainting/conf`` in an installed wheel, else the checkout's top-level ``conf/``."""
    for candidate in (PACKAGE_DIR / "conf", PACKAGE_DIR.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"the inpainting config tree (conf/train.yaml) is neither in {PACKAGE_DIR} nor beside it: "
        "reinstall the package (pip install .) or run from a checkout"
    )
