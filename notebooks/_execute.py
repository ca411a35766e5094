"""Executes every notebook in place, so that they are committed with their outputs.

    python notebooks/_execute.py              # at the size set by JAXCAUSAL_SMALL (default full)
    JAXCAUSAL_SMALL=1 python notebooks/_execute.py

Run after regenerating a notebook with its `_make_*.py` script; the first code cell of every
notebook reads `SMALL = os.environ.get("JAXCAUSAL_SMALL", "0") == "1"`.
"""

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    names = sys.argv[1:] or sorted(p.name for p in HERE.glob("*.ipynb"))
    for name in names:
        path = HERE / name
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(notebook, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(HERE)}}).execute()
        nbformat.write(notebook, path)
        print(f"executed {name}", flush=True)
