"""Command start-up: ``python -m inpainting.<command> --help`` and the heavy imports, timed side by side.

How long a command takes before it does anything is mostly what it imports. Each command's ``--help`` (Hydra
composes the config and prints it: the whole start, no work) and each heavy library's bare import run as fresh
Python processes, ``repeats`` rounds interleaved (every item once per round), so a burst of load on a shared
machine hits every row alike. Reported: the median wall seconds and the median CPU seconds (user + system of
the child; stabler than wall time on a loaded machine), and for a command the heavy libraries its import loads.
Run as ``python bench/bench_command_start.py [--repeats 5] [--write docs/benchmarks.md]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("predict", "export", "demo", "evaluate", "train")
HEAVY = ("torch", "lightning", "albumentations", "hydra", "gradio", "onnxruntime", "torchmetrics", "wandb")
#: the imports timed on their own rows (the others in HEAVY are only looked for in the commands' imports)
TIMED_IMPORTS = ("torch", "lightning", "albumentations", "hydra", "gradio", "onnxruntime")


def _env() -> dict[str, str]:
    """This checkout on the path, wandb offline, gradio analytics off: nothing reaches the network."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WANDB_MODE": "offline",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }


def _timed(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child) for one run of ``argv``; a failure raises with its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=600)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{(result.stdout + result.stderr)[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _imported_by(module: str) -> str:
    """The heavy libraries that importing ``module`` loads, in a fresh process."""
    code = f"import sys, {module}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=600
    )
    return result.stdout.strip() or ("(failed)" if result.returncode else "-")


def items() -> list[tuple[str, str, list[str]]]:
    """(kind, name, argv) of every timed run; libraries that are not installed are left out."""
    rows = [("baseline", "python -c pass", [sys.executable, "-c", "pass"])]
    for command in COMMANDS:
        if command == "demo" and importlib.util.find_spec("gradio") is None:
            continue
        rows.append(("command", command, [sys.executable, "-m", f"inpainting.{command}", "--help"]))
    for name in TIMED_IMPORTS:
        if importlib.util.find_spec(name) is not None:
            rows.append(("import", name, [sys.executable, "-c", f"import {name}"]))
    return rows


def run(repeats: int = 5) -> list[dict]:
    """One row per command and heavy import: median wall and CPU seconds over ``repeats`` interleaved rounds."""
    plan = items()
    walls: dict[str, list[float]] = {name: [] for _, name, _ in plan}
    cpus: dict[str, list[float]] = {name: [] for _, name, _ in plan}
    loads = []
    for _ in range(repeats):
        loads.append(os.getloadavg()[0])
        for _, name, argv in plan:
            wall, cpu = _timed(argv)
            walls[name].append(wall)
            cpus[name].append(cpu)
    rows = []
    for kind, name, _ in plan:
        rows.append(
            {
                "what": f"`{name} --help`"
                if kind == "command"
                else f"`import {name}`"
                if kind == "import"
                else name,
                "wall s": statistics.median(walls[name]),
                "CPU s": statistics.median(cpus[name]),
                "heavy imports": _imported_by(f"inpainting.{name}") if kind == "command" else "",
                "repeats": repeats,
                "load avg": max(loads),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    """The table, and how loaded the machine was while it ran (1-minute load average, highest seen)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report import markdown_table

    load = max(r["load avg"] for r in rows)
    cores = os.cpu_count() or 1
    note = (
        f"{rows[0]['repeats']} interleaved rounds, medians. 1-minute load average up to {load:.1f} on {cores} "
        f"cores{': the machine was loaded, so wall times are long; CPU seconds compare better' if load > cores else ''}. "
        "`--help` is a command's whole start (imports + Hydra composing its config); `heavy imports` are the "
        f"libraries of {', '.join(HEAVY)} that importing the command module loads."
    )
    return markdown_table(rows, ["what", "wall s", "CPU s", "heavy imports"]) + "\n\n" + note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", type=Path, default=None, help="write the section into this markdown page")
    args = parser.parse_args()
    body = markdown(run(args.repeats))
    print(body)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        write_section("command_start", "Command start-up: `--help` and the heavy imports", body, args.write)


if __name__ == "__main__":
    main()
