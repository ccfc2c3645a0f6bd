"""Training-step time of the default recipe before and after the seam/speed changes, side by side in one process.

A step is what the trainer does per batch: forward, hole-weighted L1, backward, optimizer step (batch 8, 128² by
default, one thread). "before" is the recipe the first shipped model was trained with (GroupNorm, plain push-pull
prior, closed attention gates, Adam stepping one parameter at a time); "after" is ``conf/model/sa_unet.yaml`` with
``conf/optimizer/adam.yaml`` (per-pixel LayerNorm, harmonic prior, fused Adam). Variants run interleaved, one step
each in turn, so drift of a shared machine hits all of them alike; the table reports medians and ratios.

    python bench/bench_train_step.py [--steps 8] [--batch 8] [--size 128] [--threads 1]

``--attention`` measures issue 12's question instead, the price of attention per training step: unet, sa_unet,
sa_unet_lite, and channels-last unet/sa_unet, all with today's recipe and fused Adam:

    python bench/bench_train_step.py --attention --steps 8 --size 128    # and --size 256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL_CONF = REPO / "conf" / "model"
BEFORE = {"norm": "group", "fill_prior_relax": 0, "attention_gate_init": 0.0}
NO_ATTENTION = {"attention": ["none", "none", "none"]}


def model_yaml(name: str) -> dict:
    """``conf/model/<name>.yaml`` as plain data, without its ``defaults`` list. Plain YAML (these files use no
    interpolation): bench_gpu_step shares this on a GPU machine that has PyYAML but neither omegaconf nor hydra."""
    config = yaml.safe_load((MODEL_CONF / f"{name}.yaml").read_text())
    config.pop("defaults", None)
    return config


#: what conf/model/sa_unet_lite.yaml changes on top of sa_unet.yaml
LITE = model_yaml("sa_unet_lite")


def network(overrides: dict, layout: str = "tokens") -> torch.nn.Module:
    """The network of conf/model/sa_unet.yaml with ``overrides``, seeded, in training mode; ``layout``: ``tokens``
    (default) or ``channels_last`` (weights)."""
    from inpainting.models.registry import build_network

    torch.manual_seed(0)
    net = build_network({**model_yaml("sa_unet"), **overrides}).train()
    if layout == "channels_last":
        net = net.to(memory_format=torch.channels_last)
    return net


def build(
    overrides: dict, fused: bool, layout: str = "tokens"
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """:func:`network` and its Adam (fused, or the per-parameter loop of the 'before' recipe)."""
    net = network(overrides, layout)
    optimizer = torch.optim.Adam(
        net.parameters(), lr=5e-4, **({"fused": True} if fused else {"foreach": False})
    )
    return net, optimizer


Variant = tuple[torch.nn.Module, torch.optim.Optimizer, bool]  # network, its Adam, channels-last inputs


def variants_for(attention: bool) -> dict[str, Variant]:
    """The variants of one run: issue 10's before/after recipe, or (``attention``) issue 12's attention price."""
    if not attention:
        return {
            "sa_unet before": (*build(BEFORE, fused=False), False),
            "sa_unet after": (*build({}, fused=True), False),
            "unet before": (*build({**BEFORE, **NO_ATTENTION}, fused=False), False),
            "unet after": (*build(NO_ATTENTION, fused=True), False),
        }
    return {
        "unet": (*build(NO_ATTENTION, fused=True), False),
        "sa_unet": (*build({}, fused=True), False),
        "sa_unet_lite": (*build(LITE, fused=True), False),
        "unet channels-last": (*build(NO_ATTENTION, fused=True, layout="channels_last"), True),
        "sa_unet channels-last": (*build({}, fused=True, layout="channels_last"), True),
    }


def time_steps(variants: dict[str, Variant], batch: int, size: int, steps: int) -> dict[str, float]:
    """Median CPU seconds per training step of each variant, the variants interleaved step by step."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
    mask = (torch.rand(batch, 1, size, size, generator=generator) > 0.7).float()
    channels_last = tuple(t.contiguous(memory_format=torch.channels_last) for t in (image, mask))
    times: dict[str, list[float]] = {name: [] for name in variants}
    for step in range(steps + 1):  # step 0 warms up
        for name, (net, optimizer, last) in variants.items():
            x, m = channels_last if last else (image, mask)
            start = (
                time.process_time()
            )  # CPU time: on a shared machine, waiting for a core is not the step's cost
            out = net(x * (1 - m), m)
            loss = ((out - x).abs() * (1 + 5 * m)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step:
                times[name].append(time.process_time() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--attention", action="store_true", help="issue 12's variants (see above)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    median = time_steps(variants_for(args.attention), args.batch, args.size, args.steps)
    command = (
        f"python bench/bench_train_step.py {'--attention ' if args.attention else ''}--steps {args.steps} "
        f"--batch {args.batch} --size {args.size} --threads {args.threads}"
    )
    setup = (
        f"Forward + hole-weighted L1 + backward + Adam step, batch {args.batch}, {args.size}², {args.threads} "
        f"thread(s), median CPU time of {args.steps} interleaved steps; {machine()}."
    )
    if args.attention:
        rows = ["| variant | median step (CPU s) | vs unet |", "|---|---|---|"]
        rows += [f"| {name} | {t:.3f} | {t / median['unet']:.2f}x |" for name, t in median.items()]
        body = (
            f"{setup} All: conf/model/sa_unet.yaml (unet: its attention set to none; sa_unet_lite: 16 base "
            "channels, keys capped at 16x16) with fused Adam.\n\n"
            f"Reproduce: `{command}`\n\n" + "\n".join(rows)
        )
        section = (
            f"train_step_attention_{args.size}",
            f"Training step: the price of attention ({args.size}²)",
        )
    else:
        rows = [
            "| variant | median step (CPU s) | vs its own 'before' | vs unet of the same recipe |",
            "|---|---|---|---|",
        ]
        for name, t in median.items():
            model, when = name.split()
            rows.append(
                f"| {name} | {t:.3f} | {t / median[f'{model} before']:.2f}x | {t / median[f'unet {when}']:.2f}x |"
            )
        body = (
            f"{setup} 'before': GroupNorm, plain push-pull prior, gates at 0, Adam with a per-parameter loop; "
            "'after': conf/model/sa_unet.yaml (LayerNorm, harmonic prior, gates at 1) with fused Adam.\n\n"
            f"Reproduce: `{command}`\n\n" + "\n".join(rows)
        )
        section = ("train_step", "Training step before/after the seam and speed changes")
    print(body)
    if not args.no_write:
        write_section(*section, body)


if __name__ == "__main__":
    main()
