"""Training-step cost of the U-Net, the SDPA self-attention U-Net and the seed's naive attention, on CPU.

Each variant runs in a fresh subprocess (so its peak RSS, ``ru_maxrss``, is its own) and times forward + backward
of an L1 loss in fp32: one warm-up step, then the median of ``--steps`` steps. The seed's naive block needs an
``(H*W) x (H*W)`` energy matrix per image; when that is over ``--max-energy-gib`` the variant is not run (the machine
would be killed, not raise) and the table says what it would have needed.

    python bench/bench_models.py                 # 256x256, batch 4 (+ batch 8 for unet / sa_unet), 3 steps
    python bench/bench_models.py --size 128 --batch 2 --steps 2
    # attention's price per full training step (with Adam, variants interleaved): bench/bench_train_step.py --attention
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GIB = 2**30

SA_UNET_YAML = Path(__file__).resolve().parents[1] / "conf" / "model" / "sa_unet.yaml"

# name -> (overrides on top of conf/model/sa_unet.yaml, attention implementation, description)
VARIANTS: dict[str, tuple[dict[str, Any], str, str]] = {
    "unet": ({"attention": ["none", "none", "none"]}, "sdpa", "none (conf/model/unet.yaml)"),
    "sa_unet": ({}, "sdpa", "default: 8x8 windows at 1/2 (decoder) + global at 1/4, 2x-pooled keys"),
    "sa_unet_both": ({"attention_in": "both"}, "sdpa", "as default, windows in encoder and decoder"),
    "sa_unet_full_keys": ({"kv_pool": 1}, "sdpa", "as default, global over all 4096 keys"),
    "sa_unet_lite": (
        {"base_channels": 16, "kv_grid": 16},
        "sdpa",
        "conf/model/sa_unet_lite.yaml: half width",
    ),
    "unet_channels_last": ({"attention": ["none", "none", "none"]}, "channels_last", "unet, channels-last"),
    "sa_unet_channels_last": ({}, "channels_last", "default sa_unet, channels-last"),
    "naive_bottleneck": (
        {"attention": ["none", "none", "global"]},
        "naive",
        "seed's naive block at 1/4 only",
    ),
    "naive_every_level": (
        {"attention": ["global", "global", "global"], "attention_in": "both"},
        "naive",
        "seed's design: naive block at every level",
    ),
}


def sa_unet_config() -> dict[str, Any]:
    """The network arguments of conf/model/sa_unet.yaml (so the benchmark measures the shipped default)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(SA_UNET_YAML))
    cfg.pop("_target_", None)
    return cfg


def naive_energy_bytes(attention: list[str], size: int) -> int:
    """Largest per-image ``(HW) x (HW)`` fp32 energy matrix among the levels that have attention."""
    sizes = [(size // 2**i) ** 2 for i, a in enumerate(attention) if a != "none"]
    return max((n * n * 4 for n in sizes), default=0)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one variant in this (fresh) process and return its measurements."""
    import resource

    import torch

    from inpainting.models.analysis import NaiveSelfAttention2d
    from inpainting.models.sa_unet import SAUNet, count_parameters

    torch.manual_seed(0)
    net = SAUNet(**spec["kwargs"])
    if spec["impl"] == "naive":
        for key, block in list(net.attn.items()):
            net.attn[key] = NaiveSelfAttention2d(block.channels)
    b, s = spec["batch"], spec["size"]
    image = torch.rand(b, 3, s, s) * 2 - 1
    mask = (torch.rand(b, 1, s, s) > 0.7).float()
    masked = image * (1 - mask)
    if spec["impl"] == "channels_last":
        net = net.to(memory_format=torch.channels_last)
        image, mask, masked = (t.contiguous(memory_format=torch.channels_last) for t in (image, mask, masked))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def step() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        net.zero_grad(set_to_none=True)
        loss = (net(masked, mask) - image).abs().mean()
        loss.backward()
        return time.perf_counter() - t0, time.process_time() - c0

    step()  # warm-up
    times = [step() for _ in range(spec["steps"])]
    return {
        "time_s": statistics.median(t for t, _ in times),
        "cpu_s": statistics.median(c for _, c in times),
        "times_s": [t for t, _ in times],
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        "rss_before_steps_gib": rss_before / GIB,
        "params": count_parameters(net),
        "threads": torch.get_num_threads(),
    }


def run(
    batch: int = 4,
    size: int = 256,
    steps: int = 5,
    large_batch: int = 8,
    variants: list[str] | None = None,
    max_energy_gib: float = 8.0,
) -> list[dict[str, Any]]:
    """Measure every variant at ``batch`` (and unet/sa_unet at ``large_batch``); one dict per row."""
    base_cfg = sa_unet_config()
    plan = [(name, batch) for name in (variants or list(VARIANTS))]
    if large_batch:
        plan += [(name, large_batch) for name in ("unet", "sa_unet") if variants is None or name in variants]
    rows = []
    for name, b in plan:
        overrides, impl, desc = VARIANTS[name]
        kwargs = {**base_cfg, **overrides}
        attention = kwargs["attention"]
        row: dict[str, Any] = {"variant": name, "description": desc, "batch": b, "size": size}
        need = naive_energy_bytes(attention, size) if impl == "naive" else 0
        if need > max_energy_gib * GIB:
            row["status"] = (
                f"not run: would need {need / GIB:.0f} GiB per image ({need * b / GIB:.0f} GiB at batch {b}) "
                f"for the {size * size}x{size * size} energy matrix"
            )
            rows.append(row)
            continue
        spec = {"kwargs": kwargs, "impl": impl, "batch": b, "size": size, "steps": steps}
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            killed = proc.returncode < 0 or "memory" in proc.stderr.lower()
            row["status"] = f"{'OOM' if killed else 'fails'}: {last[:160]}"
        else:
            row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
            row["status"] = "ok"
        rows.append(row)
    base = {r["batch"]: r for r in rows if r["variant"] == "unet" and "time_s" in r}
    for r in rows:
        if "time_s" in r and r["batch"] in base:
            r["vs_unet"] = r["time_s"] / base[r["batch"]]["time_s"]
            r["cpu_vs_unet"] = r["cpu_s"] / base[r["batch"]]["cpu_s"]
            r["min_vs_unet"] = min(r["times_s"]) / min(base[r["batch"]]["times_s"])
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | attention | batch | params | time per step | vs unet | CPU time per step | vs unet | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(
                f"| {r['variant']} | {r['description']} | {r['batch']} | - | {r['status']} | - | - | - | - |"
            )
            continue
        lines.append(
            f"| {r['variant']} | {r['description']} | {r['batch']} | {r['params'] / 1e6:.2f} M | "
            f"{r['time_s']:.2f} s | {r.get('vs_unet', float('nan')):.2f}x | {r['cpu_s']:.2f} s | "
            f"{r.get('cpu_vs_unet', float('nan')):.2f}x | {r['peak_rss_gib']:.2f} GiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--large-batch", type=int, default=8, help="also run unet/sa_unet at this batch (0: skip)"
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--steps", type=int, default=5, help="timed steps after one warm-up (median reported)"
    )
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=None)
    parser.add_argument("--max-energy-gib", type=float, default=8.0, help="skip naive variants needing more")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON after the table")
    parser.add_argument("--write", type=Path, default=None, help="write the table into this markdown page")
    parser.add_argument("--section", default="models_attention", help="section name for --write")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    rows = run(args.batch, args.size, args.steps, args.large_batch, args.variants, args.max_energy_gib)
    threads = next((r["threads"] for r in rows if "threads" in r), "?")
    print(
        f"fp32 CPU, {args.size}x{args.size}, forward+backward, median of {args.steps} steps, {threads} threads\n"
    )
    print(markdown(rows))
    for b in sorted({r["batch"] for r in rows}):
        by = {r["variant"]: r for r in rows if r["batch"] == b and "time_s" in r}
        if "sa_unet" in by and "unet" in by:
            sa = by["sa_unet"]
            print(
                f"\nbatch {b}: sa_unet / unet step time = {sa['vs_unet']:.2f}x wall, {sa['cpu_vs_unet']:.2f}x CPU, "
                f"{sa['min_vs_unet']:.2f}x fastest step "
                f"(target <= 1.15x); sa_unet peak RSS {sa['peak_rss_gib']:.2f} GiB"
            )
    if args.json:
        print(json.dumps(rows, indent=1))
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        note = (
            f"\n\nfp32 CPU, {args.size}², forward + backward of an L1 loss, median of {args.steps} steps after a "
            "warm-up, each variant in a fresh process, one after another in one run. Shared machine: read the "
            "ratios (vs unet), not the seconds."
        )
        write_section(
            args.section,
            f"Training step, attention layouts, lite model, channels-last ({args.size}², batch {args.batch})",
            markdown(rows) + note,
            args.write,
        )


if __name__ == "__main__":
    main()
