"""Experiments: run parameterized notebooks through papermill and read back the results they record.

- `scrap(name, value)` / `scrap_figure(name, fig)` inside a notebook record results in its outputs;
  `read_scraps(path)` / `read_figure_scraps(path)` read them from an executed notebook.
- `run_notebook(path, parameters)` validates the parameters against the `parameters` cell, executes the
  notebook into `runs/<stem>/...ipynb` and returns a `RunResult`.
- `run_tour(notebooks_dir)` runs a folder of notebooks and writes an HTML index of their scraps.
"""
import importlib
from typing import Any

# Lazy exports (PEP 562): `from workbench.experiments import scrap` inside a notebook kernel must not pay
# for papermill and nbformat, which only the runner, tour and sweep need.
_EXPORTS = {
    "Parameter": "parameters", "RawValue": "parameters", "notebook_parameters": "parameters",
    "parse_literal": "parameters", "resolve_parameters": "parameters", "validate_parameters": "parameters",
    "NotebookFailed": "runner", "RunResult": "runner", "run_notebook": "runner",
    "SCRAP_MIMETYPE": "scraps", "read_figure_scraps": "scraps", "read_scraps": "scraps", "scrap": "scraps",
    "scrap_figure": "scraps", "to_jsonable": "scraps",
    "TourResult": "tour", "run_tour": "tour",
    "SweepResult": "sweep", "sweep": "sweep",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'workbench.experiments' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = [
    "SCRAP_MIMETYPE",
    "NotebookFailed",
    "Parameter",
    "RawValue",
    "RunResult",
    "SweepResult",
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
    "sweep",
    "to_jsonable",
    "validate_parameters",
]
