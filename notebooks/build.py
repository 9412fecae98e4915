"""Build the tutorial notebooks from their sources and execute them (outputs are committed).

Each ``notebooks/src/NN_name.py`` is a script in the "percent" format: ``# %%`` starts a code cell,
``# %% [markdown]`` a markdown cell whose lines are ``# ``-commented. This script turns each into
``notebooks/NN_name.ipynb`` and executes it in place with nbclient, so the committed outputs are what
the code printed. ``tests/test_notebooks.py`` checks that every notebook matches its source and runs
each one again at a small size (``BAYESINV_NOTEBOOK_SMALL=1``) so they cannot rot.

    python notebooks/build.py            # all notebooks, full size
    python notebooks/build.py 01 03      # only those whose name starts with 01 or 03
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``[(kind, source)]`` for a percent-format script (kind is ``"code"`` or ``"markdown"``)."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
        elif cells:
            kind, lines = cells[-1]
            lines.append(line[2:] if kind == "markdown" and line.startswith("# ") else
                         ("" if kind == "markdown" and line == "#" else line))
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells]


def build_notebook(source: Path) -> nbformat.NotebookNode:
    """An unexecuted notebook from a percent-format source."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, text in parse_cells(source.read_text()):
        nb.cells.append(nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text))
    return nb


def execute(nb: nbformat.NotebookNode, *, small: bool = False, timeout: int = 900) -> nbformat.NotebookNode:
    """Execute ``nb`` in a fresh kernel with ``notebooks/`` as the working directory."""
    env_before = os.environ.get("BAYESINV_NOTEBOOK_SMALL")
    os.environ["BAYESINV_NOTEBOOK_SMALL"] = "1" if small else "0"
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("BAYESINV_NOTEBOOK_SMALL", None)
        else:
            os.environ["BAYESINV_NOTEBOOK_SMALL"] = env_before
    return nb


def drop_environment_noise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove stderr outputs that describe the machine, not the tutorial: tqdm's "IProgress not found" warning
    (it names this machine's site-packages path; committed notebooks hold no absolute paths)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr"
                                    and "TqdmWarning" in "".join(o.get("text", "")))]
    return nb


def main(prefixes: list[str]) -> None:
    for source in sorted(SOURCES.glob("*.py")):
        if prefixes and not any(source.stem.startswith(p) for p in prefixes):
            continue
        print(f"executing {source.stem} ...", flush=True)
        nb = drop_environment_noise(execute(build_notebook(source)))
        nbformat.write(nb, HERE / f"{source.stem}.ipynb")


if __name__ == "__main__":
    main(sys.argv[1:])
