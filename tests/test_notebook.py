"""notebooks/quickstart.ipynb runs top to bottom (nbclient, nbmake's engine) and is stored without outputs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="needs nbformat/nbclient (pip install 'inpainting[notebook]')"
)
nbclient = pytest.importorskip("nbclient", reason="needs nbclient (pip install 'inpainting[notebook]')")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    dirty = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"code cells {dirty} carry outputs: run `nbstripout {NOTEBOOK}` before committing"


def test_quickstart_executes_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook writes into tempfile.mkdtemp()
    monkeypatch.setenv("WANDB_MODE", "offline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    start = time.monotonic()
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    seconds = time.monotonic() - start
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3, (
        "data/masks, loss curve and prediction plots"
    )
    assert any("text/markdown" in o.get("data", {}) for o in outputs), "the evaluation table"
    assert seconds < 90, f"the quickstart took {seconds:.0f} s; keep it under 90 s"
