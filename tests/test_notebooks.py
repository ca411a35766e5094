"""Executes every `notebooks/*.ipynb` at a small size (`JAXCAUSAL_SMALL=1`); any cell error fails.

Each notebook runs in a fresh `python3` kernel of this interpreter (ipykernel's own kernel spec),
with `MPLBACKEND=Agg` so plotting needs no display.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600


def test_notebooks_directory_exists():
    assert NOTEBOOKS_DIR.is_dir(), f"{NOTEBOOKS_DIR} is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("JAXCAUSAL_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError naming the failing cell and its traceback
    n_code = sum(cell.cell_type == "code" for cell in notebook.cells)
    executed = [c for c in notebook.cells if c.cell_type == "code" and c.execution_count]
    assert len(executed) == n_code
