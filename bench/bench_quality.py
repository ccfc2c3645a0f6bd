"""Quality benchmark: train models or whole recipes with the same step budget, evaluate them and every
classical baseline on held-out photos, and put the summary in docs/benchmarks.md.

    python bench/bench_quality.py --data-root ../shared/data/photos --steps 1500
    python bench/bench_quality.py --data-root ../shared/data/photos --steps 200 --section zoo_quality \
        --runs sa_unet unet pconv:experiment=pconv deepfill_v2:experiment=deepfill_v2

A run is ``NAME`` (the model option of that name, default recipe) or ``NAME:override[,override...]`` (any
training overrides, e.g. an experiment recipe); each trains into ``<out>/train_<NAME>``.

The data root is always given on the command line (never baked into the package). Photos are split by
file with the data module's seeded split, so no crop of a test photo is ever trained on.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BASELINES = ("telea", "navier_stokes", "biharmonic", "patchmatch", "push_pull")


def parse_run(spec: str) -> tuple[str, list[str]]:
    """``"sa_unet"`` -> ``("sa_unet", ["model=sa_unet"])``; ``"pconv:experiment=pconv"`` -> its overrides."""
    name, _, overrides = spec.partition(":")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise SystemExit(f"--runs entry {spec!r}: NAME must be letters, digits, '_' or '-' (then :overrides)")
    return name, overrides.split(",") if overrides else [f"model={name}"]


def _run(args: list[str], log_path: Path) -> float:
    start = time.perf_counter()
    with open(log_path, "w") as log:
        env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
        subprocess.run(
            [sys.executable, *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, check=True
        )
    return time.perf_counter() - start


def downscaled_copy(source: Path, target: Path, short_side: int) -> Path:
    """Photos read once (EXIF, greyscale handled), shrunk so the short side is ``short_side``, saved as PNG.

    Training crops are resized to 128-256 px anyway; decoding 2560-px JPEGs every step would make the
    benchmark measure the JPEG decoder instead of the networks.
    """
    import cv2

    from inpainting.data.images import list_images, read_image_rgb

    target.mkdir(parents=True, exist_ok=True)
    for path in list_images(source):
        out = target / (path.relative_to(source).with_suffix(".png").as_posix().replace("/", "__"))
        if out.exists():
            continue
        image = read_image_rgb(path)
        scale = short_side / min(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument(
        "--runs", "--models", nargs="+", default=["sa_unet", "unet"], help="NAME or NAME:override,..."
    )
    parser.add_argument("--section", default="quality", help="docs/benchmarks.md section to (re)write")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for each training run")
    parser.add_argument("--masks-per-image", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "logs" / "bq")
    parser.add_argument("--skip-train", action="store_true", help="reuse checkpoints already in --out")
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="only write the shrunk photo copy (<out>/photos_<short-side>)",
    )
    parser.add_argument(
        "--short-side", type=int, default=384, help="photos are shrunk to this short side first"
    )
    args = parser.parse_args()
    root = downscaled_copy(args.data_root.resolve(), args.out / f"photos_{args.short_side}", args.short_side)
    if args.prepare_only:
        print(f"photos ready in {root}")
        return
    split = [f"data.root={root}", f"data.test_fraction={args.test_fraction}", "data.val_fraction=0.1"]
    data = ["data=folder", *split, f"data.image_size={args.image_size}"]

    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the training/evaluation subprocesses
        torch.set_num_threads(args.threads)  # and this process, so the section's machine stamp says it
    runs = dict(parse_run(spec) for spec in args.runs)
    timings = {}
    for name, overrides in runs.items():
        run_dir = args.out / f"train_{name}"
        if not args.skip_train:
            command = [
                "-m", "inpainting.train", *overrides, *data, f"data.batch_size={args.batch_size}",
                "data.num_workers=0", "data.persistent_workers=false", f"trainer.max_steps={args.steps}",
                f"trainer.val_check_interval={min(250, args.steps)}", "logger=csv", "test=false", "seed=0",
                f"hydra.run.dir={run_dir}",
            ]  # fmt: skip
            print("train:", "python", " ".join(command), flush=True)
            timings[name] = _run(command, args.out / f"train_{name}.log")
    methods = [
        *BASELINES,
        *(f"{name}@ckpt:{args.out / f'train_{name}' / 'checkpoints' / 'last.ckpt'}" for name in runs),
    ]
    eval_dir = args.out / "eval"
    command = [
        "-m", "inpainting.evaluate", *data, "split=test", f"masks_per_image={args.masks_per_image}",
        f"methods=[{','.join(methods)}]", f"hydra.run.dir={eval_dir}",
    ]  # fmt: skip
    print("evaluate:", "python", " ".join(command), flush=True)
    _run(command, args.out / "eval.log")

    budget = ", ".join(f"{m} {t / 60:.0f} min" for m, t in timings.items()) or "(training skipped)"
    recipes = "; ".join(f"`{name}`: `{' '.join(overrides)}`" for name, overrides in runs.items())
    body = (
        f"Training: {args.steps} steps, batch {args.batch_size}, {args.image_size}² random crops, seed 0, "
        f"on the train split of `{args.data_root}` (photos shrunk to a {args.short_side}-px short side; seeded "
        f"split by photo, test fraction {args.test_fraction}); "
        f"wall time {budget}{f' ({args.threads} thread(s) each)' if args.threads else ''}. Runs: {recipes}. "
        f"Evaluation on the held-out test photos at {args.image_size}², "
        f"{args.masks_per_image} masks per photo per set.\n\n"
        f"Reproduce: `python bench/bench_quality.py --data-root {args.data_root} --steps {args.steps} "
        f"--image-size {args.image_size} --batch-size {args.batch_size} --section {args.section} "
        f"--runs {' '.join(args.runs)}`\n\n"
        + (eval_dir / "summary.md").read_text().split("\n", 1)[1].replace("\n## ", "\n### ")
    )
    title = f"Quality at an equal step budget: {', '.join(runs)} vs classical baselines (bench-quality)"
    write_section(args.section, title, body)
    print(f"summary written to docs/benchmarks.md; outputs in {eval_dir}")


if __name__ == "__main__":
    main()
