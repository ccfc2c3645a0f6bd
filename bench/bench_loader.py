"""Does data loading starve the model? Loader images/s (num_workers 0, 1, 2) next to sa_unet's training rate.

The loader is the project's ``InpaintingDataModule`` training loader (decode JPEG, random 256² crop + flip,
a ``conf/mask/mixed.yaml`` mask per image, batches of 4) over ~32 generated 512x384 JPEGs in a temp dir; the
model row is one optimizer step (forward + backward + Adam) of the default ``conf/model/sa_unet.yaml`` at 256²,
batch 4, with the default loss. If the loader's images/s is well above the model's, loading does not starve
training; on a CPU-only machine both compete for the same cores, so read the ratio, not the absolute numbers.

    python bench/bench_loader.py [--images 32] [--epochs 4] [--model-steps 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
SIZE = 256
BATCH = 4


def write_jpegs(folder: Path, count: int, width: int = 512, height: int = 384, seed: int = 0) -> None:
    """Photo-like JPEGs (smooth gradients, shapes and noise) so decoding costs what a real photo costs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(count):
        base = rng.uniform(40, 200, size=3)
        image = np.stack(
            [base[c] + 50 * np.sin(xx / (20 + 7 * c + i)) + 40 * np.cos(yy / 31) for c in range(3)], -1
        )
        image += rng.normal(0, 8, image.shape)
        image = np.clip(image, 0, 255).astype(np.uint8)
        for _ in range(4):
            center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            color = tuple(int(v) for v in rng.integers(0, 255, 3))
            cv2.circle(image, center, int(rng.integers(10, 80)), color, -1)
        cv2.imwrite(str(folder / f"photo_{i:03d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def loader_rate(root: Path, num_workers: int, epochs: int, main_threads: int | None = None) -> dict:
    """Steady-state images/s of the training loader: the clock starts at the first batch (worker start-up and
    the first decode are reported separately as ``first_batch_s``). ``main_threads`` sets torch's intra-op
    threads of this process for the measurement (workers always run with 1)."""
    from inpainting.data.datamodule import InpaintingDataModule

    threads = torch.get_num_threads()
    if main_threads is not None:
        torch.set_num_threads(main_threads)

    datamodule = InpaintingDataModule(
        root=str(root),
        image_size=SIZE,
        batch_size=BATCH,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        mask_generator=instantiate(OmegaConf.load(CONF / "mask" / "mixed.yaml")),
        val_fraction=0.0,
        test_fraction=0.0,
    )
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    start = time.perf_counter()
    first_batch_s = None
    images = 0
    for _ in range(epochs):
        for batch in loader:
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - start
                start = time.perf_counter()
            else:
                images += batch["image"].shape[0]
    elapsed = time.perf_counter() - start
    torch.set_num_threads(threads)
    setting = f"num_workers={num_workers}" + (
        f", main process {main_threads} torch thread" if main_threads else ""
    )
    return {
        "component": "loader",
        "setting": setting,
        "images_per_s": images / elapsed,
        "first_batch_s": first_batch_s,
    }


def model_rate(steps: int) -> dict:
    """images/s of sa_unet training steps (forward + backward + Adam) at 256², batch 4; median step."""
    from inpainting.losses.reconstruction import InpaintingLoss

    torch.manual_seed(0)
    net = instantiate(OmegaConf.load(CONF / "model" / "sa_unet.yaml"))
    loss_fn = instantiate(OmegaConf.load(CONF / "loss" / "default.yaml"))
    assert isinstance(loss_fn, InpaintingLoss)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-4)
    image = torch.rand(BATCH, 3, SIZE, SIZE) * 2 - 1
    mask = (torch.rand(BATCH, 1, SIZE, SIZE) > 0.7).float()
    times = []
    for step in range(steps + 1):  # step 0 warms up (allocator, kernels)
        start = time.perf_counter()
        output = net(image * (1 - mask), mask)
        composite = output * mask + image * (1 - mask)
        loss = loss_fn(output, composite, image, mask)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    step_s = float(np.median(times))
    return {
        "component": "sa_unet train step",
        "setting": f"batch {BATCH}, fp32",
        "images_per_s": BATCH / step_s,
    }


def run(images: int = 32, epochs: int = 4, model_steps: int = 2) -> list[dict]:
    """One row per loader setting and one for the model; ``vs_model`` = images/s over the model's images/s."""
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        root = Path(tmp)
        write_jpegs(root, images)
        rows = [loader_rate(root, workers, epochs) for workers in (0, 1, 2)]
        # with num_workers=0 the samples are made in the training process, whose torch uses every core for
        # tiny per-sample ops; this row shows what that costs on this machine
        rows.insert(1, loader_rate(root, 0, epochs, main_threads=1))
    model = model_rate(model_steps)
    rows.append(model)
    for row in rows:
        row["vs_model"] = row["images_per_s"] / model["images_per_s"]
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        f"{SIZE}² crops of 512x384 JPEGs, batch {BATCH}, torch threads: {torch.get_num_threads()}",
        "",
        "| component | setting | images/s | x sa_unet step rate | first batch (s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        first = f"{r['first_batch_s']:.2f}" if r.get("first_batch_s") is not None else "-"
        lines.append(
            f"| {r['component']} | {r['setting']} | {r['images_per_s']:.2f} | {r['vs_model']:.1f} | {first} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="JPEGs to generate (default 32)")
    parser.add_argument("--epochs", type=int, default=4, help="passes over the loader per setting")
    parser.add_argument("--model-steps", type=int, default=2, help="timed sa_unet steps (after 1 warm-up)")
    args = parser.parse_args()
    print(markdown(run(args.images, args.epochs, args.model_steps)))


if __name__ == "__main__":
    main()
