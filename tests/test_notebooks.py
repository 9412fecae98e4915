"""The tutorial notebooks match their sources and execute (at a small size), so they cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1] / "notebooks"
spec = importlib.util.spec_from_file_location("notebooks_build", ROOT / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)
SOURCES = sorted((ROOT / "src").glob("*.py"))


def test_parse_cells_splits_code_and_markdown():
    cells = build.parse_cells("# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n")
    assert cells == [("markdown", "# Title\n\ntext"), ("code", "x = 1")]


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_committed_notebook_matches_its_source_and_has_outputs(source):
    committed = nbformat.read(ROOT / f"{source.stem}.ipynb", as_version=4)
    expected = build.build_notebook(source)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in expected.cells]
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "the committed notebook was not executed"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_notebook_executes_at_a_small_size(source, tmp_path, monkeypatch):
    nb = build.build_notebook(source)
    build.execute(nb, small=True, timeout=600)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors
