"""Write benchmark tables into docs/benchmarks.md, one marked section per benchmark.

Each benchmark replaces only its own section, so benchmarks run at different times (``make bench``,
``make bench-quality``) share one page, and every section says which machine and date produced it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import torch

DEFAULT_PAGE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nWritten by `make bench` and `make bench-quality` (bench/). Each section names the machine and "
    "date it was measured on. Times on shared machines drift: compare rows of one section (measured side by side "
    "in one run), and read the ratios.\n"
)


def machine() -> str:
    """One line naming the machine: CPU model, cores, torch and its thread count."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def write_section(name: str, title: str, body: str, page: Path = DEFAULT_PAGE) -> None:
    """Replace (or append) section ``name`` of the page with ``body`` under ``title``, stamped with the machine."""
    stamp = f"_Measured {dt.date.today().isoformat()} on {machine()}._"
    section = f"<!-- bench:{name} -->\n## {title}\n\n{stamp}\n\n{body.strip()}\n<!-- /bench:{name} -->"
    text = page.read_text() if page.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text)


def run_logged(command: Sequence[str], source: Path, log: Path) -> tuple[float, tuple[float, float]]:
    """Run a command from the tree at ``source`` (on PYTHONPATH, wandb offline), its output into ``log``; return
    its wall seconds and the 1-minute load average before and after (shared machines: say what else ran)."""
    env = {**os.environ, "PYTHONPATH": str(source), "WANDB_MODE": "offline"}
    print(" ".join(command[1:]), flush=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log, "w") as file:
        subprocess.run(list(command), cwd=source, env=env, stdout=file, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start, (load, os.getloadavg()[0])
