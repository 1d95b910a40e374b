"""Tiny notebooks written with nbformat for the experiments tests."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def make_notebook(path: Path, parameters: str | None, *cells: str) -> Path:
    """Write a notebook: a markdown title, an optional `parameters`-tagged cell, then the code cells."""
    nb = new_notebook()
    nb.cells.append(new_markdown_cell(f"# {path.stem}"))
    if parameters is not None:
        nb.cells.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells.extend(new_code_cell(source) for source in cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook_factory(tmp_path):
    def factory(name: str, parameters: str | None, *cells: str) -> Path:
        return make_notebook(tmp_path / name, parameters, *cells)

    return factory


@pytest.fixture
def no_execution(monkeypatch):
    """Make any papermill execution fail the test: validation must happen before it."""
    import papermill

    def refuse(*args, **kwargs):
        raise AssertionError("papermill.execute_notebook was called although the input was invalid")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)
