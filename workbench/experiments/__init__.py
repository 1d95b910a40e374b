"""Experiments: run parameterized notebooks through papermill and read back the results they record.

- `scrap(name, value)` / `scrap_figure(name, fig)` inside a notebook record results in its outputs;
  `read_scraps(path)` / `read_figure_scraps(path)` read them from an executed notebook.
- `run_notebook(path, parameters)` validates the parameters against the `parameters` cell, executes the
  notebook into `runs/<stem>/...ipynb` and returns a `RunResult`.
- `run_tour(notebooks_dir)` runs a folder of notebooks and writes an HTML index of their scraps.
"""
from .parameters import (
    Parameter,
    RawValue,
    notebook_parameters,
    parse_literal,
    resolve_parameters,
    validate_parameters,
)
from .runner import NotebookFailed, RunResult, run_notebook
from .scraps import (
    SCRAP_MIMETYPE,
    read_figure_scraps,
    read_scraps,
    scrap,
    scrap_figure,
    to_jsonable,
)
from .tour import TourResult, run_tour

__all__ = [
    "SCRAP_MIMETYPE",
    "NotebookFailed",
    "Parameter",
    "RawValue",
    "RunResult",
    "TourResult",
    "notebook_parameters",
    "parse_literal",
    "read_figure_scraps",
    "read_scraps",
    "resolve_parameters",
    "run_notebook",
    "run_tour",
    "scrap",
    "scrap_figure",
    "to_jsonable",
    "validate_parameters",
]
