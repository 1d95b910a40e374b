"""Sweeps: run a notebook over a grid of parameters, in parallel, resumably, and collect the scraps.

`sweep(notebook, grid, fixed, out_dir)` checks every grid value against the notebook's `parameters` cell
(and a Dask address by connecting to it) before anything runs, then executes each combination through
papermill (`run_notebook`, one kernel per run):

- locally by default, `workers` runs at a time, each in a fresh process (`sweep_worker.py`) that writes
  the run's output notebook and record into the sweep folder itself, the moment the run ends;
- on a Dask distributed cluster with `dask_address` (the engine to move to when one machine is not
  enough, https://distributed.dask.org); a Dask worker runs the notebook in its own scratch folder and
  returns the record and the output notebook, which the driver stores (no shared filesystem needed).

The sweep folder (see `sweep_store.py`) makes it resumable: a run's record is written atomically only
when the run is complete, a restart skips every run that has a record and reruns the others. Killing
the driver at any point (even kill -9 with runs in flight) loses at most the runs in flight, which are
redone. Restarting into a folder made for another notebook content, grid or fixed parameters is an error.
At the end all records are collected into `results.parquet` / `results.csv` and one
`plot_<metric>.png` per requested metric.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scraps import to_jsonable
from .sweep_grid import Run, check_grid, expand
from .sweep_report import plot_metric, plottable_metrics, results_table, write_table
from .sweep_store import SweepStore, file_sha256

DASK_CONNECT_TIMEOUT = 5.0


@dataclass
class SweepResult:
    """A finished (or resumed-and-finished) sweep: the table and where everything was written."""

    out_dir: str
    notebook: str
    grid: dict[str, list]
    fixed: dict[str, Any]
    records: list[dict[str, Any]]
    executed: list[str]
    reused: list[str]
    table: Any = field(repr=False)
    parquet_path: str = ""
    csv_path: str = ""
    plots: dict[str, str] = field(default_factory=dict)
    missing_metrics: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({
            "out_dir": self.out_dir, "notebook": self.notebook, "grid": self.grid, "fixed": self.fixed,
            "records": self.records, "executed": self.executed, "reused": self.reused,
            "parquet_path": self.parquet_path, "csv_path": self.csv_path, "plots": self.plots,
            "missing_metrics": self.missing_metrics,
        })

    def __repr__(self) -> str:
        return (f"SweepResult({len(self.records)} runs: {len(self.records) - len(self.failed)} ok, "
                f"{len(self.failed)} failed; {len(self.executed)} executed now, {len(self.reused)} reused) "
                f"-> {self.out_dir}")


# -- one run (executes in a worker process) -------------------------------------------------------------
def _record(run: Run, result: Any, error: str | None, started: float, output: str | None) -> dict[str, Any]:
    record = {
        "run_id": run.run_id,
        "parameters": to_jsonable(run.parameters),
        "status": result.status if result is not None else "error",
        "seconds": round(result.seconds if result is not None else time.time() - started, 3),
        "scraps": to_jsonable(result.scraps) if result is not None else {},
        "figures": sorted(result.figures) if result is not None else [],
        "error": result.error if result is not None else error,
        "output": output,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": started,
        "finished": time.time(),
    }
    return record


def execute_run(notebook: str, run: Run, sweep_dir: str | None, kernel_name: str | None = None,
                execution_timeout: int | None = None) -> dict[str, Any]:
    """Run one grid point; with `sweep_dir`, store its notebook and record there and return the record.

    Without `sweep_dir` (a Dask worker, maybe on another machine) it runs in a scratch folder and returns
    the record with the output notebook's bytes under "_notebook" for the driver to store.
    """
    from .runner import run_notebook

    started = time.time()
    scratch = (Path(sweep_dir) / "partial" / f"{run.run_id}-{os.getpid()}" if sweep_dir
               else Path(tempfile.mkdtemp(prefix=f"workbench-sweep-{run.run_id}-")))
    result, error = None, None
    try:
        result = run_notebook(notebook, run.parameters, runs_dir=scratch, name=run.run_id, kernel_name=kernel_name,
                              progress=False, execution_timeout=execution_timeout)
    except Exception as exc:  # noqa: BLE001  (kernel died before papermill saved anything: a failed run)
        error = f"{type(exc).__name__}: {exc}"
    produced = Path(result.output_path) if result is not None else None
    record = _record(run, result, error, started, f"notebooks/{run.run_id}.ipynb" if produced else None)
    try:
        if sweep_dir:
            SweepStore(sweep_dir).finish(record, notebook_file=produced)
            return record
        if produced is not None:
            record["_notebook"] = produced.read_bytes()
        return record
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- the engines ---------------------------------------------------------------------------------------
def connect_dask(address: str, timeout: float = DASK_CONNECT_TIMEOUT):
    """A dask.distributed Client for `address`, or ValueError saying it cannot be reached."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"dask_address must be a scheduler address like tcp://host:8786, got {address!r}")
    try:
        from distributed import Client
    except ImportError as exc:
        raise ValueError("dask_address given but dask.distributed is not installed "
                         "(pip install 'workbench[dask]')") from exc
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ValueError(f"dask_address {address!r}: cannot reach a Dask scheduler within {timeout:g} s "
                         f"({type(exc).__name__}: {exc})") from None


class _LocalWorker:
    """One `sweep_worker` process; runs are sent one at a time, it is restarted if it dies."""

    def __init__(self, store: SweepStore, index: int, threads: int):
        self.store, self.index, self.proc = store, index, None
        self.threads = threads
        self.log_path = store.root / "logs" / f"worker-{index}.log"

    def _start(self) -> None:
        import subprocess

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115  (the child keeps its own copy)
        # Workers share the cores: torch's OpenMP pool oversubscribed by N kernels at once runs many times
        # slower than N single-threaded ones, so each worker (and the kernels it starts) gets cores / workers.
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(self.threads))
        env.setdefault("MKL_NUM_THREADS", str(self.threads))
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "workbench.experiments.sweep_worker"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                         encoding="utf-8", bufsize=1, env=env)
        finally:
            log.close()

    def run(self, task: dict[str, Any], run: Run) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        started = time.time()
        try:
            self.proc.stdin.write(json.dumps(task) + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            answer = ""
        if answer:
            return json.loads(answer)
        code = self.proc.wait()  # the worker died with this run in flight: record why
        self.proc = None
        record = _record(run, None, f"the run's worker process exited with code {code} "
                                    f"(see {self.log_path})", started, None)
        self.store.finish(record)
        return record

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait()


def _run_local(notebook: str, pending: list[Run], store: SweepStore, workers: int, kernel_name, timeout, bar):
    import queue
    import threading

    todo: queue.Queue[Run] = queue.Queue()
    for run in pending:
        todo.put(run)
    done: queue.Queue[dict[str, Any] | BaseException] = queue.Queue()

    def slot(index: int) -> None:
        worker = _LocalWorker(store, index, threads=max(1, (os.cpu_count() or 1) // workers))
        try:
            while True:
                try:
                    run = todo.get_nowait()
                except queue.Empty:
                    return
                task = {"notebook": notebook, "run_id": run.run_id, "parameters": to_jsonable(run.parameters),
                        "sweep_dir": str(store.root), "kernel_name": kernel_name, "timeout": timeout}
                done.put(worker.run(task, run))
        except BaseException as exc:  # noqa: BLE001  (re-raised by the driver thread)
            done.put(exc)
        finally:
            worker.close()

    threads = [threading.Thread(target=slot, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for _ in pending:
        item = done.get()
        if isinstance(item, BaseException):
            raise item
        bar.update(1)
        bar.set_postfix_str(f"{item['run_id']} {item['status']}")
    for thread in threads:
        thread.join()


def _run_dask(notebook: str, pending: list[Run], store: SweepStore, client, kernel_name, timeout, bar):
    from distributed import as_completed

    futures = [client.submit(execute_run, notebook, run, None, kernel_name, timeout, key=f"workbench-run-{run.run_id}",
                             pure=False) for run in pending]
    for future in as_completed(futures):
        record = future.result()
        notebook_bytes = record.pop("_notebook", None)
        store.finish(record, notebook_text=notebook_bytes)
        bar.update(1)
        bar.set_postfix_str(f"{record['run_id']} {record['status']}")


# -- the sweep ------------------------------------------------------------------------------------------
def default_out_dir(notebook: Path, grid: dict, fixed: dict, runs_dir: str | Path = "runs") -> Path:
    """runs_dir/sweeps/<stem>-<hash of grid and fixed>: the same command resumes into the same folder."""
    import hashlib

    text = json.dumps(to_jsonable({"grid": grid, "fixed": fixed}), sort_keys=True)
    return Path(runs_dir) / "sweeps" / f"{notebook.stem}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def sweep(
    notebook: str | Path,
    grid: dict[str, list],
    fixed: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    metrics: list[str] | None = None,
    runs_dir: str | Path = "runs",
    kernel_name: str | None = None,
    retry_failed: bool = False,
    execution_timeout: int | None = None,
    dask_timeout: float = DASK_CONNECT_TIMEOUT,
    progress: bool = True,
) -> SweepResult:
    """Run `notebook` for every combination of `grid` (name -> list of values) plus `fixed`; see the module doc.

    `out_dir` is the sweep folder (default: `runs_dir/sweeps/<stem>-<hash>`); rerunning the same sweep into
    it resumes. `workers`: local processes (default: CPU count, at most the number of runs). `dask_address`:
    run on that Dask scheduler instead. `metrics`: scrap names to plot against the first grid key.
    `retry_failed`: also rerun runs recorded as failed. All input errors raise ValueError before any run.
    """
    path = Path(notebook)
    if not path.is_file():
        raise FileNotFoundError(f"notebook: no such notebook file: {path}")
    grid, fixed = check_grid(path, grid, dict(fixed or {}))
    runs = expand(grid, fixed)
    metrics = list(metrics or [])
    bad = [m for m in metrics if not isinstance(m, str) or not m.strip()]
    if bad:
        raise ValueError(f"metrics must be non-empty scrap names, got {bad}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    if workers is not None and dask_address is not None:
        raise ValueError("workers applies to local runs; with dask_address the cluster's workers are used")
    if execution_timeout is not None and execution_timeout <= 0:
        raise ValueError(f"execution_timeout must be a positive number of seconds or None, got {execution_timeout}")
    from .kernel import ensure_kernel

    kernel = ensure_kernel(kernel_name)
    client = connect_dask(dask_address, dask_timeout) if dask_address is not None else None
    store = SweepStore(out_dir if out_dir is not None else default_out_dir(path, grid, fixed, runs_dir))
    try:
        store.open({"notebook": str(path.resolve()), "notebook_sha256": file_sha256(path),
                    "grid": to_jsonable(grid), "fixed": to_jsonable(fixed)})
        store.lock()
        try:
            store.clear_partial()
            done = {run.run_id: store.read_record(run.run_id) for run in runs}
            pending = [run for run in runs if done[run.run_id] is None
                       or (retry_failed and done[run.run_id].get("status") != "ok")]
            reused = [run.run_id for run in runs if run not in pending]
            from tqdm.auto import tqdm

            with tqdm(total=len(runs), initial=len(reused), desc=f"sweep {path.stem}", unit="run",
                      disable=not progress) as bar:
                if pending and client is not None:
                    _run_dask(str(path.resolve()), pending, store, client, kernel, execution_timeout, bar)
                elif pending:
                    n = min(workers or os.cpu_count() or 1, len(pending))
                    _run_local(str(path.resolve()), pending, store, n, kernel, execution_timeout, bar)
            return _collect(store, path, grid, fixed, runs, [r.run_id for r in pending], reused, metrics)
        finally:
            store.unlock()
    finally:
        if client is not None:
            client.close()


def _collect(store: SweepStore, path: Path, grid, fixed, runs: list[Run], executed, reused, metrics) -> SweepResult:
    records = []
    for run in runs:
        record = store.read_record(run.run_id)
        if record is None:  # cannot happen unless files were removed while running
            raise RuntimeError(f"run {run.run_id} {run.parameters} finished without a record in {store.records_dir}")
        records.append(record)
    table = results_table(records, list(grid), list(fixed))
    parquet, csv = write_table(table, store.root)
    found, missing = plottable_metrics(table, metrics)
    plots = {m: str(plot_metric(table, m, grid, store.root / f"plot_{_file_part(m)}.png")) for m in found}
    if missing:
        warnings.warn(f"no successful run recorded a number for metric(s) {missing}; recorded scraps: "
                      f"{sorted({k for r in records for k in r.get('scraps', {})})}", stacklevel=3)
    return SweepResult(str(store.root), str(path), grid, fixed, records, executed, reused, table,
                       str(parquet), str(csv), plots, missing)


def _file_part(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
