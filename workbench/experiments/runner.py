"""Run one parameterized notebook through papermill into a runs folder and return what it recorded.

papermill (https://papermill.readthedocs.io) injects the parameters as a cell after the one tagged
`parameters` and stores, in the output notebook's metadata, the injected parameters
(`metadata.papermill.parameters`), the total duration and each cell's start/end/duration
(`cell.metadata.papermill`). `run_notebook` checks the parameters first (see `parameters.py`), executes
with the current interpreter's kernel (see `kernel.py`) in the notebook's own folder, and returns a
`RunResult` built from the output notebook: status, seconds, per-cell seconds and the scraps.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from .kernel import ensure_kernel
from .parameters import resolve_parameters
from .scraps import read_figure_scraps, read_scraps, to_jsonable

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")


class NotebookFailed(RuntimeError):
    """A notebook raised while executing; the output notebook (with the traceback) was still written."""


@dataclass
class RunResult:
    """One executed notebook. `status` is "ok" or "failed"; `error` says what failed (cell and exception)."""

    notebook: str
    output_path: str
    parameters: dict[str, Any]
    status: str
    seconds: float
    cell_seconds: list[float | None] = field(default_factory=list)
    scraps: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict, repr=False)
    error: str | None = None
    kernel_name: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def raise_for_status(self) -> RunResult:
        """Raise NotebookFailed if the run failed; otherwise return self."""
        if not self.ok:
            raise NotebookFailed(f"{self.notebook} failed ({self.output_path}): {self.error}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (figures are listed by name; their PNGs stay in the output notebook)."""
        return {
            "notebook": self.notebook,
            "output_path": self.output_path,
            "parameters": to_jsonable(self.parameters),
            "status": self.status,
            "seconds": self.seconds,
            "cell_seconds": list(self.cell_seconds),
            "scraps": to_jsonable(self.scraps),
            "figures": sorted(self.figures),
            "error": self.error,
            "kernel_name": self.kernel_name,
        }

    def __repr__(self) -> str:
        lines = [f"RunResult({self.status}, {self.seconds:.1f} s) {self.notebook} -> {self.output_path}"]
        lines += [f"  {k} = {json.dumps(v, ensure_ascii=False)[:120]}" for k, v in self.scraps.items()]
        if self.error:
            lines.append(f"  error: {self.error}")
        return "\n".join(lines)


def parameter_hash(parameters: dict[str, Any]) -> str:
    """Short stable hash of a parameter dict (sorted JSON), used in output names."""
    text = json.dumps(to_jsonable(parameters), sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def output_path_for(notebook: Path, parameters: dict[str, Any], runs_dir: Path, name: str | None) -> Path:
    """runs_dir/<notebook stem>/<name>.ipynb, or <YYYYmmdd-HHMMSS>-<parameter hash>.ipynb without a name.

    An automatic name never overwrites an earlier run (a numeric suffix is added); an explicit name does.
    """
    folder = runs_dir / notebook.stem
    if name is not None:
        return folder / f"{name}.ipynb"
    stem = f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{parameter_hash(parameters)}"
    path, n = folder / f"{stem}.ipynb", 1
    while path.exists():
        path, n = folder / f"{stem}-{n}.ipynb", n + 1
    return path


def _describe_error(execution_count: Any, source: str, ename: str, evalue: str) -> str:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    if len(first) > 60:
        first = first[:57] + "..."
    return f"In [{execution_count}] `{first}`: {ename}: {evalue}"


def _execution_error(nb: nbformat.NotebookNode) -> str | None:
    """The first error output of an executed notebook, described by execution count and first source line."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                if output.get("ename") == "SystemExit" and output.get("evalue") in ("", "0"):
                    continue
                return _describe_error(cell.get("execution_count"), cell.source, output.get("ename"),
                                       output.get("evalue"))
    return None


def result_from_output(notebook: str | Path, output_path: str | Path, kernel_name: str = "",
                       error: str | None = None, seconds: float | None = None, crash: str | None = None) -> RunResult:
    """Build a RunResult from an output notebook written by papermill.

    `crash` (the kernel died, a cell timed out) is reported before any error output it caused in the cells.
    """
    nb = nbformat.read(Path(output_path), as_version=4)
    meta = nb.metadata.get("papermill", {})
    cell_seconds = [cell.metadata.get("papermill", {}).get("duration") for cell in nb.cells]
    error = crash or _execution_error(nb) or error
    duration = meta.get("duration")
    return RunResult(
        notebook=str(notebook),
        output_path=str(output_path),
        parameters=dict(meta.get("parameters", {})),
        status="failed" if error or meta.get("exception") else "ok",
        seconds=float(duration if duration is not None else (seconds or 0.0)),
        cell_seconds=cell_seconds,
        scraps=read_scraps(nb),
        figures=read_figure_scraps(nb),
        error=error if error else ("the notebook raised an exception" if meta.get("exception") else None),
        kernel_name=kernel_name,
    )


def run_notebook(
    path: str | Path,
    parameters: dict[str, Any] | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    kernel_name: str | None = None,
    progress: bool = True,
    raise_on_error: bool = False,
    cwd: str | Path | None = None,
    execution_timeout: int | None = None,
) -> RunResult:
    """Execute notebook `path` with `parameters` via papermill; the output notebook goes to `runs_dir`.

    The output is `runs_dir/<stem>/<name>.ipynb` (default name: `<timestamp>-<parameter hash>`). The
    kernel is `kernel_name` or one running this interpreter; it starts in `cwd` (default: the notebook's
    folder, as in Jupyter). Bad parameters raise ValueError before anything executes. A notebook that
    raises gives `status="failed"` with `error` set (the output notebook keeps the traceback), or raises
    NotebookFailed when `raise_on_error=True`. Rerunning with the same explicit `name` replaces that file;
    automatic names never replace anything.
    """
    notebook = Path(path)
    parameters = resolve_parameters(notebook, dict(parameters or {}))
    to_jsonable(parameters, "parameters")
    if name is not None and not _SAFE_NAME.match(name):
        raise ValueError(f"name must be a plain file name (letters, digits, . _ = + -), got {name!r}")
    if execution_timeout is not None and execution_timeout <= 0:
        raise ValueError(f"execution_timeout must be a positive number of seconds or None, got {execution_timeout}")
    kernel = ensure_kernel(kernel_name)
    output = output_path_for(notebook, parameters, Path(runs_dir), name)
    output.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(cwd) if cwd is not None else notebook.resolve().parent

    import papermill

    before = output.stat().st_mtime_ns if output.exists() else None  # an explicit name may be rerun
    start = time.perf_counter()
    error = crash = None
    try:
        papermill.execute_notebook(
            str(notebook), str(output), parameters=parameters, kernel_name=kernel,
            progress_bar=progress, cwd=str(workdir), execution_timeout=execution_timeout,
        )
    except papermill.PapermillExecutionError as exc:
        error = _describe_error(exc.exec_count, exc.source, exc.ename, exc.evalue)
    except Exception as exc:  # kernel died, timeout, ...: papermill may or may not have saved the notebook
        if not output.exists() or output.stat().st_mtime_ns == before:
            raise  # nothing of this run was saved
        crash = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    result = result_from_output(notebook, output, kernel, error, time.perf_counter() - start, crash)
    if raise_on_error:
        result.raise_for_status()
    return result
