"""bench/bench_gpu_step.py (the one-shot GPU training-step benchmark) on CPU at a tiny size: every part runs and
reports real numbers, the files land in --out, and docs/benchmarks.md is left alone without --write-docs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from inpainting.models.attention import SelfAttention2d

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "bench_gpu_step.py"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch):
    """The script as a module; the sys.path entries it adds are undone after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("bench_gpu_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_smoke_reports_every_part(bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs_writes: list[str] = []
    monkeypatch.setattr(bench, "write_section", lambda name, *_: docs_writes.append(name))
    threads = torch.get_num_threads()
    argv = ["--device", "cpu", "--out", str(tmp_path / "out"), "--size", "32", "--batch", "2", "--steps", "1"]
    argv += ["--warmup", "1", "--workers", "0", "--no-compile", "--threads", "1"]
    try:
        results = bench.main(argv)
    finally:
        torch.set_num_threads(threads)

    rows = {(r["network"], r["variant"]): r for r in results["train"]}
    assert set(rows) == {(n, v) for n in ("sa_unet", "unet") for v in ("fp32", "bf16-mixed")}
    assert all(r["images_per_s"] > 0 and r["peak_mib"] == "n/a" for r in rows.values())

    attention = results["attention"]
    names = [b["block"] for b in attention["blocks"]]
    assert names and all(name.startswith("attn.") for name in names)  # sa_unet's SelfAttention2d blocks
    assert all(b["gflop"] > 0 and b["ms"] > 0 and b["gflop_per_s"] > 0 for b in attention["blocks"])
    assert 0 < attention["share_of_step"] < 1
    unet = bench.build("unet", torch.device("cpu"))
    assert not any(isinstance(m, SelfAttention2d) for m in unet.modules())

    (loader,) = results["loader"]
    assert loader["num_workers"] == 0 and loader["images_per_s"] > 0 and loader["vs_step"] > 0

    md = (tmp_path / "out" / "bench_gpu_step.md").read_text()
    assert results["device"] and results["device"] in md and torch.__version__ in md
    assert "Reproduce: `python bench/bench_gpu_step.py --device cpu --out " in md and "--no-compile" in md
    assert "| sa_unet | fp32 |" in md and "| unet | bf16-mixed |" in md and "| attn.mid |" in md
    assert json.loads((tmp_path / "out" / "bench_gpu_step.json").read_text())["train"] == results["train"]
    assert docs_writes == []  # no --write-docs: docs/benchmarks.md untouched
