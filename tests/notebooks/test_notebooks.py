"""The research notebooks: committed without outputs, public API only, and they run end to end.

Each notebook is executed with nbclient in a fresh kernel (the interpreter running the tests),
offline (``HF_HUB_OFFLINE=1``), with an empty temporary ``MEDTRANSFER_HOME`` (root conftest) and a
temporary working directory, under a per-cell timeout.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EXPECTED = ("01_", "02_", "03_", "04_", "05_")
CELL_TIMEOUT_S = 300
# a submodule import (``from medtransfer.io.load import ...``) or a private name (``mt.io._x``)
PRIVATE_USE = re.compile(r"\bfrom medtransfer\.|\bimport medtransfer\.|\bmt(\.\w+)*\._\w")


def _code_cells(path: Path) -> list[nbformat.NotebookNode]:
    notebook = nbformat.read(path, as_version=4)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_issue_notebooks_are_there():
    names = [path.name for path in NOTEBOOKS]
    for prefix in EXPECTED:
        assert any(name.startswith(prefix) for name in names), (prefix, names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_valid_and_has_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has outputs: strip them"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"
        assert "execution" not in cell.metadata, f"{path.name} cell {index} has run timestamps"
    assert "widgets" not in notebook.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_the_public_api_only(path):
    source = "\n".join(cell.source for cell in _code_cells(path))
    assert "import medtransfer as mt" in source
    assert not PRIVATE_USE.search(source), PRIVATE_USE.search(source).group(0)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # share the cores with the other xdist workers instead of oversubscribing them
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    monkeypatch.setenv("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    # render figures as in Jupyter (the suite's Agg would skip drawing them)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors  # execute() raises first; this guards allow_errors changes
    print(f"{path.name}: {elapsed:.1f} s")
