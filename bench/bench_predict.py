"""Latency of ``predict`` (array in, array out, no file I/O): sa_unet in PyTorch, TorchScript and ONNX Runtime
against OpenCV Telea, at 256², 512² and on a 2048x1536 photo, each with a box hole of 10% of the picture.

The network is ``inpainting/weights/sa_unet_default.pt`` when it exists, else a randomly initialised default
``sa_unet`` (conf/model/sa_unet.yaml): latency does not depend on the weights. The model runs through
:class:`inpainting.inference.Inpainter` with the default strategy (``crop``: the hole's box + 128 px of context
at native resolution, downscaled only above ``max_side`` = 1024), so the table also says what size the network
actually saw. One warm-up call, then the median of ``--repeats`` calls.

    python bench/bench_predict.py                # prints the markdown table
    python bench/bench_predict.py --repeats 5 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SA_UNET_YAML = ROOT / "conf" / "model" / "sa_unet.yaml"
#: (label, height, width)
CASES = (("256²", 256, 256), ("512²", 512, 512), ("2048x1536 photo", 1536, 2048))
HOLE_FRACTION = 0.10


def bench_picture(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A real photo (scikit-image's astronaut) resized to the size, and a centred box hole of 10% of its area."""
    from skimage import data

    image = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)
    side = HOLE_FRACTION**0.5
    hole_h, hole_w = round(height * side), round(width * side)
    top, left = (height - hole_h) // 2, (width - hole_w) // 2
    mask = np.zeros((height, width), np.uint8)
    mask[top : top + hole_h, left : left + hole_w] = 1
    return np.ascontiguousarray(image), mask


def sa_unet_network() -> tuple[Any, dict[str, Any], str]:
    """The default weights if present, else a randomly initialised default sa_unet; and a description."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from inpainting.inference.checkpoint import default_weights_path, load_generator

    path = default_weights_path()
    if path.is_file():
        net, config = load_generator(path)
        return net, config["model"], f"trained weights {path.name}"
    config = OmegaConf.to_container(OmegaConf.load(SA_UNET_YAML), resolve=True)
    return instantiate(config).eval(), config, "randomly initialised default sa_unet (no weights file)"


def time_call(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` in seconds after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(repeats: int = 3) -> list[dict]:
    """One row per (picture size, method): median latency in ms and the size the method worked at."""
    import torch

    from inpainting.evaluation.baselines import get_baseline
    from inpainting.inference import Inpainter, load_model
    from inpainting.inference.export import export_onnx, export_torchscript
    from inpainting.inference.inpainter import from_module, hole_boxes

    net, config, weights = sa_unet_network()
    print(f"bench_predict: {weights}; torch threads {torch.get_num_threads()}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            "sa_unet (PyTorch)": from_module(net),
            "sa_unet (TorchScript)": load_model(
                export_torchscript(net, config, Path(tmp) / "m.ts"), trust_code=True
            ),
            "sa_unet (ONNX Runtime)": load_model(export_onnx(net, config, Path(tmp) / "m.onnx")),
        }
        telea = get_baseline("telea")
        rows: list[dict] = []
        for label, height, width in CASES:
            image, mask = bench_picture(height, width)
            methods: dict[str, Callable[[], object]] = {
                name: partial(Inpainter(model), image, mask) for name, model in models.items()
            }
            methods["OpenCV Telea"] = partial(telea, image, mask)
            top, left, bottom, right = hole_boxes(mask != 0, 128)[0]
            crop = (bottom - top, right - left)
            scale = min(1.0, 1024 / max(crop))
            network_size = f"{round(crop[1] * scale)}x{round(crop[0] * scale)}"
            for name, fn in methods.items():
                seconds = time_call(fn, repeats)
                rows.append(
                    {
                        "picture": label,
                        "hole": f"{mask.mean():.0%}",
                        "method": name,
                        "works at": "whole picture" if name == "OpenCV Telea" else f"{network_size} crop",
                        "latency (ms)": round(seconds * 1000, 1),
                    }
                )
                print(rows[-1], file=sys.stderr, flush=True)
        for row in rows:
            row["weights"] = weights
    return rows


def markdown(rows: list[dict]) -> str:
    """Pictures as rows, methods side by side (ms), plus the note on weights and the crop size."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    pictures = list(dict.fromkeys(r["picture"] for r in rows))
    lines = [
        "| picture (10% hole) | sa_unet runs at | " + " | ".join(f"{m} (ms)" for m in methods) + " |",
        "|---|---|" + "---:|" * len(methods),
    ]
    for picture in pictures:
        cells = {r["method"]: r for r in rows if r["picture"] == picture}
        network = next(r["works at"] for r in cells.values() if r["method"] != "OpenCV Telea")
        lines.append(
            f"| {picture} | {network} | "
            + " | ".join(f"{cells[m]['latency (ms)']:g}" for m in methods)
            + " |"
        )
    lines.append("")
    lines.append(
        f"Median of repeated calls after a warm-up, array in / array out (no file I/O). Model: {rows[0]['weights']}. "
        "sa_unet goes through `Inpainter` with the default `strategy=crop` (hole box + 128 px context, native "
        "resolution up to `max_side=1024`); Telea works on the whole picture."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", type=Path, default=None, help="write the section into this markdown page")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    rows = run(args.repeats)
    body = markdown(rows)
    print(body)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        write_section(
            "predict",
            "Predict latency: sa_unet (PyTorch, TorchScript, ONNX Runtime) vs Telea",
            body,
            args.write,
        )


if __name__ == "__main__":
    main()
