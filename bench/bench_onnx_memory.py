"""Peak memory of one ``predict`` call on a 2048x1536 photo with a 10% hole: PyTorch vs ONNX Runtime.

ONNX has no memory-efficient attention op at opset 18, so global attention exported as MatMul + Softmax builds the
whole ``queries x keys`` score matrix: at the 904x742 crop that ``strategy=crop`` hands the network, 42,036 x 10,509
scores per head (about 7 GB). ``inpainting.export`` now exports it as a ``Loop`` over query blocks whose scores
stay under ``EXPORT_SCORE_BUDGET`` (same math). This bench exports the network both ways and runs each backend in
a fresh subprocess (so ``ru_maxrss`` is that run's own peak), under an address-space cap (``RLIMIT_AS``) so a
run that would need tens of GB fails inside its process instead of waking the kernel's OOM killer on a shared
machine. The network is ``inpainting/weights/sa_unet_default.pt`` when present (memory does not depend on the
weights), else a randomly initialised default ``sa_unet``.

    python bench/bench_onnx_memory.py                     # prints the table
    python bench/bench_onnx_memory.py --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GIB = 2**30
HEIGHT, WIDTH = 1536, 2048

# (label, model file key, Inpainter strategy, max_side, address-space cap in GiB)
RUNS = (
    ("PyTorch (eager)", "generator", "crop", 1024, 10),
    ("ONNX Runtime, query-chunked attention (this export)", "onnx", "crop", 1024, 10),
    ("ONNX Runtime, plain MatMul + Softmax (score_budget=0)", "onnx_plain", "crop", 1024, 6),
    ("PyTorch (eager)", "generator", "full", None, 10),
    ("ONNX Runtime, query-chunked attention (this export)", "onnx", "full", None, 10),
)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One predict call in this fresh process, under the address-space cap; its peak RSS and time."""
    import resource

    cap = int(spec["cap_gib"] * GIB)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    import torch
    from bench_predict import bench_picture

    from inpainting.inference import Inpainter, load_model

    torch.set_num_threads(spec["threads"])
    image, mask = bench_picture(HEIGHT, WIDTH)
    model = load_model(spec["path"])
    inpaint = Inpainter(model, spec["strategy"], max_side=spec["max_side"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    out = inpaint(image, mask)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        "rss_before_call_gib": before / GIB,
        "ok": bool(out.shape == image.shape),
    }


def run(threads: int = 2) -> list[dict[str, Any]]:
    """Export the network (chunked and plain), then one subprocess per row of RUNS."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from bench_predict import sa_unet_network

    from inpainting.inference.checkpoint import save_generator
    from inpainting.inference.export import export_onnx

    net, config, weights = sa_unet_network()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "generator": save_generator(net, config, Path(tmp) / "g.pt", {}),
            "onnx": export_onnx(net, config, Path(tmp) / "chunked.onnx"),
            "onnx_plain": export_onnx(net, config, Path(tmp) / "plain.onnx", score_budget=0),
        }
        for label, key, strategy, max_side, cap in RUNS:
            spec = {
                "path": str(paths[key]),
                "strategy": strategy,
                "max_side": max_side,
                "cap_gib": cap,
                "threads": threads,
            }
            proc = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec)],
                capture_output=True,
                text=True,
                check=False,
            )
            row: dict[str, Any] = {"backend": label, "strategy": strategy, "cap_gib": cap, "weights": weights}
            if proc.returncode == 0:
                row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
                row["status"] = "ok"
            else:
                lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
                last = lines[-1] if lines else f"exit code {proc.returncode}"
                row["status"] = f"fails under the {cap} GiB cap: {last[:140]}"
            print(row, file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | strategy (network input) | time (s) | peak RSS | RSS before the call |",
        "|---|---|---:|---:|---:|",
    ]
    sizes = {"crop": "crop: 904x742 hole box + context", "full": "full: 2048x1536"}
    for r in rows:
        where = sizes[r["strategy"]]
        if r["status"] != "ok":
            lines.append(f"| {r['backend']} | {where} | - | {r['status']} | - |")
            continue
        lines.append(
            f"| {r['backend']} | {where} | {r['seconds']:.1f} | {r['peak_rss_gib']:.2f} GiB | "
            f"{r['rss_before_call_gib']:.2f} GiB |"
        )
    lines += [
        "",
        f"One call of `Inpainter` on a 2048x1536 photo with a centred 10% box hole, each in a fresh process (peak "
        f"RSS = `ru_maxrss`, includes the interpreter and libraries), address space capped as noted. Model: "
        f"{rows[0]['weights']}. Query-chunked export: score blocks of at most 2^24 elements (64 MiB).",
        "",
        "The default crop strategy is the issue-12 case. With `kv_grid: 16` (the default since it scored the same, "
        "section kv_grid) global attention has at most 256 keys, so the plain MatMul + Softmax export fits too; "
        "without the cap it failed under a 6 GiB cap on this crop (42,036 x 10,509 scores per head), which is what "
        "the query-chunked export bounds for networks with `kv_grid: 0`. `full` (the whole photo at native "
        "resolution, `strategy=full max_side=null`) needs over 3 GB in both backends: the 2048x1536 feature maps "
        "themselves, and in ONNX Runtime the 8x8-window score tensors at 1/2 resolution (~0.8 GB each by "
        "arithmetic).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None, help="write the section into this markdown page")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    rows = run(args.threads)
    body = markdown(rows)
    print(body)
    if args.write:
        from report import write_section

        write_section("onnx_memory", "ONNX Runtime vs PyTorch memory on a 2048x1536 photo", body, args.write)


if __name__ == "__main__":
    main()
