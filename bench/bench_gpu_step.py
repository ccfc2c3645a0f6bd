"""GPU training-step benchmark: sa_unet vs unet in fp32, bf16-mixed and torch.compile, attention's share, loader.

Unlike the CPU benchmarks in bench/, this one is prepared to run once, unattended, on a lent GPU machine (a few
minutes, no internet) and answers what a GPU run of the default recipe would get: training images/s of
``conf/model/sa_unet.yaml`` and of the same net without attention (``unet``) per precision/compile variant, the
share and achieved FLOP/s of the attention blocks in sa_unet's fp32 step, whether the project's training loader
keeps up with the step (num_workers 0/4/8), and peak GPU memory. Results are written after each part, so a run
cut short still leaves what it measured; compile runs last (slowest, may fail: the error is recorded).

    python bench/bench_gpu_step.py --device cuda --out $OUT             # on the GPU (bench/gpu_check.sh)
    python bench/bench_gpu_step.py --device cpu --out /tmp/gpu_step --size 32 --batch 2 --steps 1 --warmup 1 \\
        --workers 0 --no-compile                                          # CPU smoke test
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]
import bench_train_step  # noqa: E402
from report import machine, markdown_table, write_section  # noqa: E402

NETWORKS = {"sa_unet": {}, "unet": bench_train_step.NO_ATTENTION}
TITLE = "GPU training-step benchmark (sa_unet vs unet: fp32, bf16, torch.compile; attention; loader)"


def log(message: str) -> None:
    """Progress line on stderr, flushed (a run killed by ``timeout`` still shows how far it got)."""
    print(f"[bench_gpu_step] {message}", file=sys.stderr, flush=True)


def build(name: str, device: torch.device) -> torch.nn.Module:
    """The network exactly as bench_train_step builds it: sa_unet.yaml, unet = the same without attention."""
    return bench_train_step.network(NETWORKS[name]).to(device)


def timed(fn: Callable[[], object], warmup: int, steps: int, device: torch.device) -> tuple[float, float]:
    """(warm-up seconds, seconds per call over ``steps`` timed calls after ``warmup`` untimed ones)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    times = []
    for count in (warmup, steps):
        sync()
        start = time.perf_counter()
        for _ in range(count):
            fn()
        sync()
        times.append(time.perf_counter() - start)
    return times[0], times[1] / steps


def train_rate(name: str, variant: str, image: Tensor, mask: Tensor, args: argparse.Namespace) -> dict:
    """images/s of forward + hole-weighted L1 + backward + fused Adam for one network and variant."""
    device = image.device
    row: dict = {"network": name, "variant": variant}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        net = build(name, device)
        optimizer = torch.optim.Adam(net.parameters(), lr=5e-4, fused=True)
        model = torch.compile(net) if variant == "compiled" else net

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant == "bf16-mixed"):
                out = model(image * (1 - mask), mask)
                loss = ((out.float() - image).abs() * (1 + 5 * mask)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        warm, step_s = timed(step, args.warmup, args.steps, device)
        row.update(images_per_s=args.batch / step_s, step_ms=1e3 * step_s, warmup_s=warm)
    except Exception as error:  # compile on a new machine may fail; record it and go on
        traceback.print_exc()
        row["error"] = f"{type(error).__name__}: {str(error).strip()[:300]}"
    row["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else "n/a"
    log(f"{name} {variant}: {row.get('images_per_s', row.get('error'))}")
    return row


def block_step(block: torch.nn.Module, x: Tensor, rest: list, grad: Tensor) -> None:
    """One forward + backward of an attention block alone (input and parameter gradients)."""
    block.zero_grad(set_to_none=True)
    x.grad = None
    block(x, *rest).backward(grad)


def attention_blocks(image: Tensor, mask: Tensor, args: argparse.Namespace, step_ms: float) -> dict:
    """Each SelfAttention2d of sa_unet alone: forward+backward ms on its captured input, GFLOP (3x forward)."""
    from inpainting.models.analysis import count_flops
    from inpainting.models.attention import SelfAttention2d

    net = build("sa_unet", image.device)
    inputs: dict[str, tuple] = {}
    hooks = [
        module.register_forward_hook(lambda _m, a, _o, n=name: inputs.__setitem__(n, a))
        for name, module in net.named_modules()
        if isinstance(module, SelfAttention2d)
    ]
    with torch.no_grad():
        net(image * (1 - mask), mask)
    for hook in hooks:
        hook.remove()
    modules, blocks = dict(net.named_modules()), []
    for name, captured in inputs.items():
        block, x = modules[name], captured[0].detach().clone().requires_grad_(True)
        rest = [a.detach().clone() if isinstance(a, Tensor) else a for a in captured[1:]]
        grad = torch.randn_like(x)

        _, seconds = timed(partial(block_step, block, x, rest, grad), args.warmup, args.steps, image.device)
        gflop = 3 * count_flops(block, x.detach(), *rest) / 1e9
        shape = "x".join(map(str, x.shape))
        blocks.append(
            dict(block=name, shape=shape, ms=1e3 * seconds, gflop=gflop, gflop_per_s=gflop / seconds)
        )
    total_ms, total_gflop = sum(b["ms"] for b in blocks), sum(b["gflop"] for b in blocks)
    step_gflop = 3 * count_flops(net, image * (1 - mask), mask) / 1e9
    return {
        "blocks": blocks,
        "total_ms": total_ms,
        "total_gflop": total_gflop,
        "gflop_per_s": total_gflop / total_ms * 1e3 if total_ms else 0.0,
        "share_of_step": total_ms / step_ms,
        "step_gflop": step_gflop,
        "step_gflop_per_s": step_gflop / step_ms * 1e3,
    }


def loader_rates(args: argparse.Namespace, step_images_per_s: float) -> list[dict]:
    """bench_loader's training loader at --size/--batch per num_workers, against sa_unet's fp32 images/s.

    The loader needs hydra, omegaconf and albumentations, which a bare GPU machine may lack: then no rows, and
    the reason is logged (the other parts do not need them)."""
    try:
        import bench_loader
    except ImportError as error:
        log(f"loader part skipped: {error} (bring the package as a wheel, see bench/gpu_check.sh)")
        return []
    bench_loader.SIZE, bench_loader.BATCH = args.size, args.batch
    count = max(16, 4 * args.batch * max(max(args.workers), 1))  # >= 4 batches per worker: not just prefetch
    with tempfile.TemporaryDirectory(prefix="bench_gpu_step_") as tmp:
        bench_loader.write_jpegs(Path(tmp), count)
        rows = [bench_loader.loader_rate(Path(tmp), workers, epochs=2) for workers in args.workers]
    for workers, row in zip(args.workers, rows, strict=True):
        row.update(num_workers=workers, images=count, vs_step=row["images_per_s"] / step_images_per_s)
        log(f"loader num_workers={workers}: {row['images_per_s']:.1f} images/s")
    return rows


def markdown(results: dict) -> str:
    """The report body from whatever parts ``results`` holds so far (raw keys as column names)."""
    a, rate = (
        results["settings"],
        {(r["network"], r["variant"]): r.get("images_per_s") for r in results["train"]},
    )
    train = []
    for r in results["train"]:
        sa, un = rate.get(("sa_unet", r["variant"])), rate.get(("unet", r["variant"]))
        failed = "failed: " + " ".join(r.get("error", "").split()).replace("|", "/")[:120]
        ratio = sa / un if sa and un and r["network"] == "sa_unet" else ""
        train.append({**r, "images_per_s": r.get("images_per_s", failed), "sa_unet/unet images/s": ratio})
    columns = [
        "network",
        "variant",
        "images_per_s",
        "step_ms",
        "warmup_s",
        "peak_mib",
        "sa_unet/unet images/s",
    ]
    lines = [
        f"Device: {results['device']}; torch {results['torch']}; {results['date']}. Batch {a['batch']}, "
        f"{a['size']}², {a['warmup']} warm-up + {a['steps']} timed steps; step = forward + hole-weighted L1 + "
        "backward + fused Adam. sa_unet = conf/model/sa_unet.yaml, unet = the same with attention none. "
        "warmup_s includes torch.compile's compilation; peak_mib = torch.cuda.max_memory_allocated per row."
        + (" fp32 is fair fp32: TF32 off (matmul and cuDNN); cudnn.benchmark on." if results["cuda"] else ""),
        f"\nReproduce: `{results['command']}`\n",
        markdown_table(train, columns),
    ]
    if att := results.get("attention"):
        total = {
            "block": "total",
            "ms": att["total_ms"],
            "gflop": att["total_gflop"],
            "gflop_per_s": att["gflop_per_s"],
        }
        lines += [
            f"\nAttention blocks of sa_unet, fp32, each block's forward + backward alone on its captured input "
            f"(gflop = 3x forward): {100 * att['share_of_step']:.1f}% of the fp32 step. Whole step: "
            f"{att['step_gflop']:.3g} GFLOP, {att['step_gflop_per_s']:.3g} GFLOP/s.\n",
            markdown_table([*att["blocks"], total]),
        ]
    if loader := results.get("loader"):
        lines += [
            f"\nTraining loader (bench_loader: {loader[0]['images']} generated 512x384 JPEGs, {a['size']}² crops, "
            "mixed masks) vs sa_unet's fp32 step; vs_step > 1 = loading does not starve training.\n",
            markdown_table(loader, ["num_workers", "images_per_s", "first_batch_s", "vs_step"]),
        ]
    return "\n".join(lines)


def save(results: dict, out: Path) -> str:
    """Write bench_gpu_step.md and .json under ``out``; returns the markdown."""
    body = markdown(results)
    (out / "bench_gpu_step.md").write_text(body + "\n")
    (out / "bench_gpu_step.json").write_text(json.dumps(results, indent=1) + "\n")
    return body


def main(argv: list[str] | None = None) -> dict:
    """Run all parts, writing results under --out after each; returns the raw results."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, required=True, help="folder for bench_gpu_step.md/.json")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 4, 8])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument(
        "--write-docs", action="store_true", help="also write section gpu_step of docs/benchmarks.md"
    )
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, cuda = torch.device(args.device), args.device.startswith("cuda")
    if cuda:  # fair fp32: no TF32 anywhere; cuDNN picks its fastest algorithms in the warm-up
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "device": torch.cuda.get_device_name(device) if cuda else machine(),
        "cuda": cuda,
        "torch": torch.__version__,
        "date": dt.datetime.now().isoformat(timespec="minutes"),
        "command": "python bench/bench_gpu_step.py " + shlex.join(argv),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "train": [],
    }
    generator = torch.Generator().manual_seed(0)
    image = (torch.rand(args.batch, 3, args.size, args.size, generator=generator) * 2 - 1).to(device)
    mask = (torch.rand(args.batch, 1, args.size, args.size, generator=generator) > 0.7).float().to(device)
    for variant in ("fp32", "bf16-mixed"):
        for name in NETWORKS:
            results["train"].append(train_rate(name, variant, image, mask, args))
            save(results, args.out)
    sa_fp32 = results["train"][0]
    if "error" not in sa_fp32:  # both parts are read against sa_unet's fp32 step
        results["attention"] = attention_blocks(image, mask, args, sa_fp32["step_ms"])
        save(results, args.out)
        results["loader"] = loader_rates(args, sa_fp32["images_per_s"])
        save(results, args.out)
    if not args.no_compile:
        for name in NETWORKS:
            results["train"].append(train_rate(name, "compiled", image, mask, args))
            save(results, args.out)
    body = save(results, args.out)
    print(body)
    if args.write_docs:
        write_section("gpu_step", TITLE, body)
    return results


if __name__ == "__main__":
    main()
