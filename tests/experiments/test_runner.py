import json

import nbformat
import pytest

from workbench.experiments import NotebookFailed, RunResult, run_notebook


def test_run_records_parameters_timings_and_scraps(notebook_factory, tmp_path):
    nb = notebook_factory(
        "count.ipynb", "n = 2\nlabel = 'a'\nscale = 1.0",
        "import os\nfrom workbench.experiments import scrap\n"
        "scrap('total', n * scale)\nscrap('label', label)\nscrap('cwd', os.getcwd())",
    )
    result = run_notebook(nb, {"n": 4, "scale": 2}, runs_dir=tmp_path / "runs", name="four", progress=False)
    assert isinstance(result, RunResult) and result.ok and result.error is None
    assert result.output_path == str(tmp_path / "runs" / "count" / "four.ipynb")
    assert result.parameters == {"n": 4, "scale": 2}
    assert result.scraps == {"total": 8, "label": "a", "cwd": str(tmp_path)}  # kernel ran in the notebook's folder
    out = nbformat.read(result.output_path, as_version=4)
    # papermill injected a cell after the parameters cell; per-cell seconds follow the output notebook's cells
    assert "injected-parameters" in out.cells[2].metadata["tags"]
    assert "n = 4" in out.cells[2].source and "scale = 2" in out.cells[2].source
    assert len(result.cell_seconds) == len(out.cells) == 4
    assert all(s is not None and s >= 0 for s in result.cell_seconds)
    assert result.seconds >= sum(result.cell_seconds[1:]) > 0
    assert out.metadata.papermill.parameters == {"n": 4, "scale": 2}
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()
    assert "total = 8" in repr(result)


def test_failing_notebook_gives_failed_status_and_keeps_output(notebook_factory, tmp_path):
    nb = notebook_factory(
        "boom.ipynb", "d = 0",
        "from workbench.experiments import scrap\nscrap('before', 1)",
        "1 / d",
        "scrap('after', 2)",
    )
    result = run_notebook(nb, {}, runs_dir=tmp_path / "runs", name="r", progress=False)
    assert result.status == "failed" and not result.ok
    assert result.error == "In [3] `1 / d`: ZeroDivisionError: division by zero"
    assert result.scraps == {"before": 1}  # what ran before the failure is still read back
    out = nbformat.read(result.output_path, as_version=4)
    assert any(o.get("ename") == "ZeroDivisionError" for c in out.cells for o in c.get("outputs", []))
    with pytest.raises(NotebookFailed, match="ZeroDivisionError"):
        result.raise_for_status()


def test_cell_timeout_is_reported_as_such(notebook_factory, tmp_path):
    nb = notebook_factory("slow.ipynb", "seconds = 30", "import time\ntime.sleep(seconds)", "print('never')")
    result = run_notebook(nb, {}, runs_dir=tmp_path / "runs", progress=False, execution_timeout=1)
    assert not result.ok
    assert result.error.startswith("CellTimeoutError: A cell timed out")
    assert result.seconds < 30


def test_bad_timeout_is_refused_before_running(notebook_factory, tmp_path, no_execution):
    nb = notebook_factory("t.ipynb", "a = 1", "a")
    with pytest.raises(ValueError, match="execution_timeout must be a positive"):
        run_notebook(nb, {}, runs_dir=tmp_path / "runs", execution_timeout=0)
