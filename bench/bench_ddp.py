"""Scaling and precision on CPU: trainer=ddp_sim (2 processes) vs 1 process, and bf16-mixed vs fp32.

1. Lightning training throughput at the same global batch: 1 process x batch 8 against ``ddp_spawn`` with 2
   CPU processes x batch 4 (what ``trainer=ddp_sim`` runs), sa_unet at a small size (64², 32 channels).
   Lightning gives each DDP process ``cores / processes`` torch threads, so both use the whole machine; the
   clock runs between two optimizer steps inside the run (start-up, spawning and the first steps excluded).
2. One training step (forward + backward + Adam) of the default ``conf/model/sa_unet.yaml`` at 256², batch 2,
   in fp32 and under ``torch.autocast("cpu", torch.bfloat16)`` (what ``trainer.precision=bf16-mixed`` does).

    python bench/bench_ddp.py [--steps 10] [--precision-steps 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
GLOBAL_BATCH = 8
DDP_SIZE = 64
WARMUP_STEPS = 2


class StepClock(L.Callback):
    """Rank 0 writes the seconds between the end of step ``warmup`` and the end of the last step."""

    def __init__(self, path: str, warmup: int) -> None:
        self.path = path
        self.warmup = warmup
        self.start: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        if trainer.global_step == trainer.max_steps and trainer.is_global_zero and self.start is not None:
            steps = trainer.global_step - self.warmup
            record = {
                "seconds": time.perf_counter() - self.start,
                "steps": steps,
                "threads": torch.get_num_threads(),
            }
            Path(self.path).write_text(json.dumps(record))


def _images(folder: Path, count: int = 32) -> None:
    from bench_loader import write_jpegs  # the same generated photos as the loader benchmark

    write_jpegs(folder, count, width=128, height=96)


def _net_config(**overrides) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "sa_unet.yaml"))
    cfg.update(overrides)
    return cfg


def ddp_rate(root: Path, processes: int, steps: int, threads: int | None = None) -> dict:
    """Training images/s of Lightning with 1 process or ``ddp_spawn`` over ``processes`` CPU processes;
    ``threads`` pins torch's intra-op threads of a 1-process run (to compare with DDP's 1 per process)."""
    from inpainting.data.datamodule import InpaintingDataModule
    from inpainting.training.module import InpaintingModule

    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)

    L.seed_everything(0, verbose=False)
    module = InpaintingModule(
        net=instantiate(_net_config()),
        loss=instantiate(OmegaConf.load(CONF / "loss" / "default.yaml")),
        optimizer=instantiate(OmegaConf.load(CONF / "optimizer" / "adam.yaml")),
    )
    datamodule = InpaintingDataModule(
        root=str(root),
        image_size=DDP_SIZE,
        batch_size=GLOBAL_BATCH // processes,
        mask_generator=instantiate(OmegaConf.load(CONF / "mask" / "mixed.yaml")),
        val_fraction=0.0,
        test_fraction=0.0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        record_path = Path(tmp) / "clock.json"
        trainer = L.Trainer(
            accelerator="cpu",
            devices=processes,
            strategy="ddp_spawn" if processes > 1 else "auto",
            max_steps=WARMUP_STEPS + steps,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[StepClock(str(record_path), WARMUP_STEPS)],
            default_root_dir=tmp,
        )
        trainer.fit(module, datamodule=datamodule)
        record = json.loads(record_path.read_text())
    torch.set_num_threads(default_threads)
    return {
        "bench": "ddp",
        "setting": f"{processes} process{'es' if processes > 1 else ''} x batch {GLOBAL_BATCH // processes}"
        + (" (ddp_spawn, gloo)" if processes > 1 else ""),
        "threads_per_process": record["threads"],
        "images_per_s": GLOBAL_BATCH * record["steps"] / record["seconds"],
    }


def precision_step(precision: str, steps: int, batch: int = 2, size: int = 256) -> dict:
    """Median seconds of a sa_unet training step at ``size``² in fp32 or bf16 autocast."""
    torch.manual_seed(0)
    net = instantiate(_net_config())
    loss_fn = instantiate(OmegaConf.load(CONF / "loss" / "default.yaml"))
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-4)
    image = torch.rand(batch, 3, size, size) * 2 - 1
    mask = (torch.rand(batch, 1, size, size) > 0.7).float()
    autocast = precision == "bf16-mixed"
    times, losses = [], []
    for step in range(steps + 1):  # step 0 warms up
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            output = net(image * (1 - mask), mask)
            composite = output * mask + image * (1 - mask)
            loss = loss_fn(output.float(), composite.float(), image, mask)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if step:
            times.append(time.perf_counter() - start)
    return {
        "bench": "precision",
        "setting": f"sa_unet {size}², batch {batch}, {precision}",
        "step_s": float(np.median(times)),
        "first_loss": losses[0],
    }


def run(steps: int = 10, precision_steps: int = 3) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        root = Path(tmp)
        _images(root)
        rows = [ddp_rate(root, 1, steps), ddp_rate(root, 1, steps, threads=1), ddp_rate(root, 2, steps)]
    for row in rows:
        row["vs_1_process"] = row["images_per_s"] / rows[0]["images_per_s"]
    fp32 = precision_step("32-true", precision_steps)
    bf16 = precision_step("bf16-mixed", precision_steps)
    fp32["vs_fp32"], bf16["vs_fp32"] = 1.0, fp32["step_s"] / bf16["step_s"]
    return [*rows, fp32, bf16]


def markdown(rows: list[dict]) -> str:
    ddp = [r for r in rows if r["bench"] == "ddp"]
    precision = [r for r in rows if r["bench"] == "precision"]
    lines = [
        f"Training throughput at global batch {GLOBAL_BATCH}, sa_unet at {DDP_SIZE}² (Lightning, CPU)",
        "",
        "| setting | torch threads / process | images/s | vs 1 process, all threads |",
        "|---|---|---|---|",
    ]
    for r in ddp:
        lines.append(
            f"| {r['setting']} | {r['threads_per_process']} | {r['images_per_s']:.1f} | {r['vs_1_process']:.2f}x |"
        )
    lines += ["", "| setting | s / step | speed-up vs fp32 | loss at step 0 |", "|---|---|---|---|"]
    for r in precision:
        lines.append(f"| {r['setting']} | {r['step_s']:.2f} | {r['vs_fp32']:.2f}x | {r['first_loss']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed Lightning steps per setting (after 2)")
    parser.add_argument("--precision-steps", type=int, default=3, help="timed 256² steps per precision")
    args = parser.parse_args()
    print(markdown(run(args.steps, args.precision_steps)))


if __name__ == "__main__":
    main()
