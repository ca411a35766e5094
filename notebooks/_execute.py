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

def _terminal(text: str) -> str:
    """What a terminal shows for `text`: each line keeps what follows its last carriage return
    (a progress bar's final state)."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def tidy_streams(notebook) -> None:
    """Merges consecutive stream outputs of a cell and collapses progress-bar redraws."""
    for cell in notebook.cells:
        merged = []
        for out in cell.get("outputs", []):
            if (out.get("output_type") == "stream" and merged
                    and merged[-1].get("output_type") == "stream"
                    and merged[-1].get("name") == out.get("name")):
                merged[-1]["text"] += out["text"]
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream":
                out["text"] = _terminal(out["text"])
        if "outputs" in cell:
            cell["outputs"] = merged


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    names = sys.argv[1:] or sorted(p.name for p in HERE.glob("*.ipynb"))
    if names == ["--tidy"]:  # only tidy the committed outputs, without executing
        for path in sorted(HERE.glob("*.ipynb")):
            notebook = nbformat.read(path, as_version=4)
            tidy_streams(notebook)
            nbformat.write(notebook, path)
        sys.exit(0)
    for name in names:
        path = HERE / name
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(notebook, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(HERE)}}).execute()
        tidy_streams(notebook)
        nbformat.write(notebook, path)
        print(f"executed {name}", flush=True)
