"""The ablation zoo side by side: parameters, MACs at 256² and 512², and the CPU training-step time.

Every generator is built from its shipped config (``conf/model/<name>.yaml``, composed by Hydra as training does);
the discriminators (``conf/discriminator/``) get parameters and MACs only. MACs are counted by
``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of one image (FLOPs / 2); scaled-dot-product
attention on CPU dispatches to an op the counter does not know, so it is counted with torch's own SDPA formula
(``inpainting.models.analysis.FLOP_MAPPING``). Not counted: element-wise ops, norms, unfold/fold (contextual attention's patch copies are memory, not
MACs). Step time: fp32 forward + backward of an L1 loss, batch 4 at 256², one warm-up step then the median of
``steps``, all models in one process one after another (side by side, on a possibly shared machine).

    python bench/bench_zoo.py              # prints the markdown table
    python bench/bench_zoo.py --write      # also writes its section of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
MODELS = ("sa_unet", "unet", "pconv_unet", "gated_ca")
DISCRIMINATORS = ("patchgan", "sn_patchgan")
SIZES = (256, 512)


def build(group: str, name: str) -> nn.Module:
    """Instantiate ``conf/<group>/<name>.yaml`` exactly as ``python -m inpainting.train`` composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        overrides = [f"model={name}"] if group == "model" else [f"discriminator={name}"]
        cfg = compose(config_name="train", overrides=overrides)
    GlobalHydra.instance().clear()
    return instantiate(cfg[group])


def _inputs(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    mask[..., size // 4 : size // 2, size // 3 : 2 * size // 3] = 1  # a 1/12-area box
    return image * (1 - mask), mask


def macs(module: nn.Module, size: int) -> int:
    """Multiply-accumulates of one forward pass on one ``size`` x ``size`` image."""
    from inpainting.models.analysis import FLOP_MAPPING

    masked, mask = _inputs(1, size)
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=FLOP_MAPPING) as counter:
        module(masked, mask)
    return counter.get_total_flops() // 2


def step_seconds(net: nn.Module, batch: int = 4, size: int = 256, steps: int = 2) -> float:
    """Median seconds of one fp32 forward + backward (L1 to a fixed target) after one warm-up step."""
    masked, mask = _inputs(batch, size)
    target = torch.zeros_like(masked)
    net.train()
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = (net(masked, mask) - target).abs().mean()
        loss.backward()
        net.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(steps: int = 2) -> list[dict]:
    """One row per network: parameters, GMACs at 256² and 512², step time (generators only)."""
    torch.manual_seed(0)
    rows = []
    for group, names in (("model", MODELS), ("discriminator", DISCRIMINATORS)):
        for name in names:
            module = build(group, name)
            row: dict[str, Any] = {
                "network": name,
                "kind": "generator" if group == "model" else "discriminator",
                "params_M": sum(p.numel() for p in module.parameters()) / 1e6,
            }
            for size in SIZES:
                row[f"GMACs_{size}"] = macs(module, size) / 1e9
            if group == "model":
                row["step_s_256_b4"] = step_seconds(module, steps=steps)
            rows.append(row)
            print(row, flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| network | kind | params (M) | GMACs 256² | GMACs 512² | fwd+bwd step, 256², batch 4 (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        step = f"{r['step_s_256_b4']:.2f}" if "step_s_256_b4" in r else "-"
        lines.append(
            f"| {r['network']} | {r['kind']} | {r['params_M']:.2f} | {r['GMACs_256']:.1f} | {r['GMACs_512']:.1f} "
            f"| {step} |"
        )
    lines.append(
        "\nMACs: FlopCounterMode on one image (FLOPs/2), convolutions, matmuls and attention only. Step: fp32, "
        "L1 loss, median of the timed steps after one warm-up; models measured one after another in one process."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write the section 'zoo' of docs/benchmarks.md")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    rows = run(steps=args.steps)
    body = markdown(rows)
    print(body)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import DEFAULT_PAGE, write_section

        write_section("zoo", "Ablation zoo: parameters, MACs, CPU training step", body, DEFAULT_PAGE)


if __name__ == "__main__":
    main()
