"""Shared pieces of the notebook tests (handed out as fixtures: test modules cannot import a conftest reliably
when several test folders have one): a tiny model folder and the `nb` helpers (defaults, clean check, a run)."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from workbench.experiments import notebook_parameters, read_scraps, run_notebook


class NotebookTools:
    """Helpers shared by the notebook tests."""

    @staticmethod
    def defaults(notebook: Path) -> dict:
        """The notebook's parameters with their default values."""
        return {name: p.default for name, p in notebook_parameters(notebook).items()}

    @staticmethod
    def assert_committed_clean(notebook: Path) -> None:
        """The committed notebook is valid, has a `parameters` cell and no outputs or execution counts."""
        nb = nbformat.read(notebook, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code)
        assert any("parameters" in c.metadata.get("tags", []) for c in code)

    @staticmethod
    def run(notebook: Path, parameters: dict, tmp_path: Path):
        """Execute through papermill; return (RunResult, scraps)."""
        result = run_notebook(notebook, parameters, runs_dir=tmp_path / "runs", progress=False)
        assert result.ok, result.error
        return result, read_scraps(result.output_path)


@pytest.fixture(scope="session")
def nb() -> NotebookTools:
    return NotebookTools()


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory) -> Path:
    """A seeded random 2-layer Llama saved as an HF folder (byte-level tokenizer)."""
    from workbench.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama", arch="llama", seed=0)
