"""Training-step time of the default recipe before and after the seam/speed changes, side by side in one process.

A step is what the trainer does per batch: forward, hole-weighted L1, backward, optimizer step (batch 8, 128² by
default, one thread). "before" is the recipe the first shipped model was trained with (GroupNorm, plain push-pull
prior, closed attention gates, Adam stepping one parameter at a time); "after" is ``conf/model/sa_unet.yaml`` with
``conf/optimizer/adam.yaml`` (per-pixel LayerNorm, harmonic prior, fused Adam). Variants run interleaved, one step
each in turn, so drift of a shared machine hits all of them alike; the table reports medians and ratios.

    python bench/bench_train_step.py [--steps 8] [--batch 8] [--size 128] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BEFORE = {"norm": "group", "fill_prior_relax": 0, "attention_gate_init": 0.0}
NO_ATTENTION = {"attention": ["none", "none", "none"]}


def build(overrides: dict, fused: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    from inpainting.models.registry import build_network

    config = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "sa_unet.yaml"))
    torch.manual_seed(0)
    net = build_network({**config, **overrides}).train()
    optimizer = torch.optim.Adam(
        net.parameters(), lr=5e-4, **({"fused": True} if fused else {"foreach": False})
    )
    return net, optimizer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = {
        "sa_unet before": build(BEFORE, fused=False),
        "sa_unet after": build({}, fused=True),
        "unet before": build({**BEFORE, **NO_ATTENTION}, fused=False),
        "unet after": build(NO_ATTENTION, fused=True),
    }
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(args.batch, 3, args.size, args.size, generator=generator) * 2 - 1
    mask = (torch.rand(args.batch, 1, args.size, args.size, generator=generator) > 0.7).float()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for step in range(args.steps + 1):  # step 0 warms up
        for name, (net, optimizer) in variants.items():
            start = time.perf_counter()
            out = net(image * (1 - mask), mask)
            loss = ((out - image).abs() * (1 + 5 * mask)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step:
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    rows = [
        "| variant | median step (s) | vs its own 'before' | vs unet of the same recipe |",
        "|---|---|---|---|",
    ]
    for name in variants:
        model, when = name.split()
        rows.append(
            f"| {name} | {median[name]:.3f} | {median[name] / median[f'{model} before']:.2f}x | "
            f"{median[name] / median[f'unet {when}']:.2f}x |"
        )
    body = (
        f"Forward + L1 + backward + Adam step, batch {args.batch}, {args.size}², {args.threads} thread(s), "
        f"median of {args.steps} interleaved steps; {machine()}. 'before': GroupNorm, plain push-pull prior, gates "
        "at 0, Adam with a per-parameter loop; 'after': conf/model/sa_unet.yaml (LayerNorm, harmonic prior, gates "
        "at 1) with fused Adam.\n\n"
        f"Reproduce: `python bench/bench_train_step.py --steps {args.steps} --batch {args.batch} --size {args.size} "
        f"--threads {args.threads}`\n\n" + "\n".join(rows)
    )
    print(body)
    if not args.no_write:
        write_section("train_step", "Training step before/after the seam and speed changes", body)


if __name__ == "__main__":
    main()
