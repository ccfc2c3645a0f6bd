"""What bench/gpu_train.sh carries to a lent GPU machine (no internet there), and its summary at the end.

    python bench/gpu_payload.py photos SRC DST [--short-side 1024] [--quality 95] [--limit N]
    python bench/gpu_payload.py wheels DST [--python 3.12 3.11]
    python bench/gpu_payload.py summary --out OUT --generator F --eval-summary F --card NAME ...

``photos``: each photo read once (EXIF, greyscale handled), shrunk to a short side, saved as JPEG: the 39 shared
photos at a 1024-px short side are 72 MB as PNG (over the 64 MiB a run carries), 15 MB as JPEG quality 95.
Names follow bench_quality's copies (relative path, ``/`` -> ``__``), so the seeded split picks the same photos.

``wheels``: the packages the training and evaluation entry points import that the GPU machine's image lacks
(hydra, omegaconf, albumentations and what they need, found by walking the installed packages' requirements),
at the versions installed here, as wheels for each target Python; ``requirements.txt`` beside them pins the
roots, so ``pip install --no-index --find-links DST -r DST/requirements.txt`` takes from DST only what is missing.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: what train/evaluate/export import beyond the GPU image: hydra's colorlog plugin is named by conf/hydra
ROOTS = ("hydra-core", "hydra-colorlog", "albumentations")
#: already in the lent GPU machine's image (with torch, lightning, torchmetrics): never carried
IN_IMAGE = frozenset({"numpy", "scipy", "pyyaml", "packaging", "opencv-python-headless", "colorama"})
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")


def canonical(name: str) -> str:
    """PEP 503 name: ``PyYAML`` -> ``pyyaml``, ``typing_extensions`` -> ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def prepare_photos(
    source: Path, target: Path, short_side: int, quality: int, limit: int | None
) -> list[Path]:
    """JPEG copies of the photos under ``source`` in ``target`` (other images there are removed: it is ours)."""
    import cv2

    sys.path.insert(0, str(REPO))
    from inpainting.data.images import list_images, read_image_rgb

    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in list_images(source)[:limit]:
        out = target / path.relative_to(source).with_suffix(".jpg").as_posix().replace("/", "__")
        image = read_image_rgb(path)
        scale = short_side / min(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        written.append(out)
    for stale in set(list_images(target)) - set(written):
        stale.unlink()
    return written


def needed_dists(pythons: list[str]) -> dict[str, str]:
    """``{name: installed version}`` of ROOTS and their requirements (for Linux x86-64 and each Python), less
    IN_IMAGE."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    todo = list(ROOTS)
    while todo:
        name = canonical(todo.pop())
        if name in found or name in IN_IMAGE:
            continue
        found[name] = metadata.version(name)
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            envs = [
                {"python_version": py, "python_full_version": f"{py}.0", "sys_platform": "linux",
                 "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
                for py in pythons
            ]  # fmt: skip
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append(req.name)
    return found


def pip(*args: str) -> bool:
    """Run pip here (this machine reaches the package index); True when it succeeded."""
    command = [sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check"]
    return subprocess.run(command).returncode == 0


def download_wheels(target: Path, pythons: list[str]) -> dict[str, str]:
    """Wheels of ``needed_dists`` in ``target`` (emptied first), one per Python where they are compiled; a
    package published only as source (antlr4-python3-runtime 4.9.3) is built here, and must come out pure."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.whl"):
        old.unlink()
    dists = needed_dists(pythons)
    for name, version in sorted(dists.items()):
        spec = f"{name}=={version}"
        for python in pythons:
            platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
            if not pip("download", "--no-deps", "--only-binary=:all:", "--python-version", python,
                       "--implementation", "cp", *platforms, "-d", str(target), spec):  # fmt: skip
                print(f"{spec}: no wheel on the index, building one here", flush=True)
                if not pip("wheel", "--no-deps", "-w", str(target), spec):
                    raise SystemExit(f"{spec}: neither a wheel nor a buildable source on the index")
            stem = canonical(name).replace("-", "_")
            if all(w.name.endswith("-none-any.whl") for w in target.glob(f"{stem}-{version}-*.whl")):
                break  # pure Python: one wheel serves every Python
    roots = [f"{canonical(root)}=={dists[canonical(root)]}" for root in ROOTS]
    (target / "requirements.txt").write_text("\n".join(roots) + "\n")
    return dists


def write_summary(args: argparse.Namespace) -> str:
    """``summary.md``: the card, how long and how far training ran, and the test-split table."""
    import torch

    generator = torch.load(args.generator, map_location="cpu", weights_only=True)
    step = generator.get("metadata", {}).get("global_step", "?")
    table = Path(args.eval_summary).read_text() if Path(args.eval_summary).is_file() else "(no evaluation)\n"
    table = re.sub(r"^#", "##", table, flags=re.MULTILINE)  # evaluate's headings nest under "Test split"
    rate = (
        f", {step / args.train_seconds:.1f} steps/s" if isinstance(step, int) and args.train_seconds else ""
    )
    text = (
        f"# GPU training run: `{args.command}`\n\n"
        f"- card: {args.card}\n"
        f"- recipe: conf/experiment/default_model_stage2.yaml from the shipped weights, overrides `{args.overrides}`\n"
        f"- training: {step} steps (step cap {args.planned_steps}; the rate decays over the {args.minutes:g}-min "
        f"wall budget), {args.train_seconds / 60:.1f} min wall time with start-up{rate}\n"
        f"- generator file: `{Path(args.generator).name}` (row `gpu` below)\n\n"
        f"## Test split\n\n{table}"
    )
    Path(args.out, "summary.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="part", required=True)
    photos = sub.add_parser("photos", help="JPEG copies shrunk to a short side")
    photos.add_argument("source", type=Path)
    photos.add_argument("target", type=Path)
    photos.add_argument("--short-side", type=int, default=1024)
    photos.add_argument("--quality", type=int, default=95)
    photos.add_argument("--limit", type=int, default=None, help="the first N photos only")
    wheels = sub.add_parser("wheels", help="wheels the GPU image lacks")
    wheels.add_argument("target", type=Path)
    wheels.add_argument("--python", nargs="+", default=["3.12", "3.11"], help="target Python versions")
    summary = sub.add_parser("summary", help="write OUT/summary.md")
    for option in ("--out", "--generator", "--eval-summary", "--card", "--command", "--overrides"):
        summary.add_argument(option, required=True)
    summary.add_argument("--planned-steps", type=int, required=True)
    summary.add_argument("--train-seconds", type=float, required=True)
    summary.add_argument("--minutes", type=float, required=True)
    args = parser.parse_args(argv)

    if args.part == "photos":
        if not args.source.is_dir():
            raise SystemExit(f"photos: {args.source} is not a folder (give --photos DIR, a folder of photos)")
        written = prepare_photos(args.source, args.target, args.short_side, args.quality, args.limit)
        print(
            f"{len(written)} photos ({args.short_side}-px short side, JPEG {args.quality}) in {args.target}"
        )
    elif args.part == "wheels":
        dists = download_wheels(args.target, args.python)
        print(f"wheels for Python {' '.join(args.python)} in {args.target}: " + ", ".join(sorted(dists)))
    else:
        print(write_summary(args))


if __name__ == "__main__":
    main()
