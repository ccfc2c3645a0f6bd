"""``make bench``: run every speed/memory benchmark and write its section of docs/benchmarks.md.

Each bench module exposes ``run() -> list[dict]`` (and optionally ``markdown(rows)``); this runner adds
the machine and date. The quality benchmark (training runs) is separate: ``make bench-quality``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import DEFAULT_PAGE, markdown_table, write_section  # noqa: E402

BENCHES = {
    "models": "Training step: sa_unet vs unet vs the seed's naive attention (fp32, CPU, 256², forward+backward)",
    "zoo": "Model zoo: parameters, MACs and CPU step time",
    "masks": "Mask generation throughput",
    "predict": "Predict latency: sa_unet (PyTorch, TorchScript, ONNX Runtime) vs OpenCV Telea",
    "loader": "Data loading vs the training step",
    "ddp": "ddp_sim vs 1 process; bf16-mixed vs fp32",
    "command_start": "Command start-up: `--help` and the heavy imports",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=DEFAULT_PAGE)
    parser.add_argument("--only", nargs="*", choices=list(BENCHES), default=None)
    args = parser.parse_args()
    for name in args.only or BENCHES:
        if not (HERE / f"bench_{name}.py").exists():
            print(f"skipping {name}: bench/bench_{name}.py not present")
            continue
        module = importlib.import_module(f"bench_{name}")
        print(f"running bench_{name} ...", flush=True)
        rows = module.run()
        body = module.markdown(rows) if hasattr(module, "markdown") else markdown_table(rows)
        write_section(name, BENCHES[name], body, args.output)
        print(body, flush=True)


if __name__ == "__main__":
    main()
