"""The tour: run every notebook of a folder (sorted by name) and write one HTML index of their scraps.

Parameters given to the tour go to each notebook that declares them; a name no notebook declares is an
error. Every notebook's parameters are checked before the first one runs. A notebook that fails does not
stop the tour: it is shown as failed (with the error) in the index, and `TourResult.ok` is False.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .parameters import notebook_parameters, resolve_parameters
from .runner import RunResult, run_notebook
from .tour_index import write_index


@dataclass
class TourResult:
    """All runs of one tour and where its index was written."""

    index_path: str
    results: list[RunResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"index_path": self.index_path, "ok": self.ok, "results": [r.to_dict() for r in self.results]}

    def __repr__(self) -> str:
        lines = [f"TourResult({len(self.results)} notebooks, {len(self.failed)} failed) index: {self.index_path}"]
        lines += [f"  {r.status:6} {r.seconds:7.1f} s  {r.notebook}" for r in self.results]
        return "\n".join(lines)


def find_notebooks(folder: str | Path) -> list[Path]:
    """The .ipynb files directly inside `folder`, sorted by name (checkpoints and hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebooks: no such folder: {folder}")
    found = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith((".", "_")))
    if not found:
        raise ValueError(f"notebooks: no .ipynb files in {folder}")
    return found


def plan_parameters(notebooks: list[Path], parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-notebook parameter dicts (each gets the names it declares), all validated before any run."""
    declared = [notebook_parameters(nb) for nb in notebooks]
    everywhere = set().union(*declared)
    unknown = [name for name in parameters if name not in everywhere]
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))}: no notebook declares them; "
            f"declared: {', '.join(sorted(everywhere)) or '(none)'}"
        )
    plans = []
    for nb, names in zip(notebooks, declared):
        mine = {k: v for k, v in parameters.items() if k in names}
        plans.append(resolve_parameters(nb, mine))
    return plans


def run_tour(
    notebooks_dir: str | Path = "notebooks",
    runs_dir: str | Path = "runs",
    out_dir: str | Path | None = None,
    parameters: dict[str, Any] | None = None,
    kernel_name: str | None = None,
    progress: bool = True,
) -> TourResult:
    """Run each notebook in `notebooks_dir` into `runs_dir`; write `out_dir/index.html` (default: runs_dir)."""
    notebooks = find_notebooks(notebooks_dir)
    plans = plan_parameters(notebooks, dict(parameters or {}))
    index_path = Path(out_dir if out_dir is not None else runs_dir) / "index.html"
    results = []
    for i, (nb, params) in enumerate(zip(notebooks, plans), 1):
        if progress:
            print(f"[{i}/{len(notebooks)}] {nb}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            result = run_notebook(nb, params, runs_dir=runs_dir, kernel_name=kernel_name, progress=progress)
        except Exception as exc:  # noqa: BLE001  (e.g. the kernel could not start: still list it in the index)
            result = RunResult(str(nb), "", params, "failed", time.perf_counter() - start,
                               error=f"{type(exc).__name__}: {exc}")
        results.append(result)
        if progress:
            r = results[-1]
            print(f"[{i}/{len(notebooks)}] {r.status} in {r.seconds:.1f} s -> {r.output_path}", file=sys.stderr, flush=True)
    write_index(results, index_path)
    return TourResult(str(index_path), results)
