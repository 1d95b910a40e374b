"""The sweep folder: a manifest, one result record per finished run, written so a kill never loses one.

Layout of a sweep folder:

    manifest.json              notebook path and sha256, grid, fixed parameters (what this folder is for)
    records/<run_id>.json      one per finished run: parameters, status, seconds, scraps, error, output
    notebooks/<run_id>.ipynb   the run's executed output notebook
    partial/                   scratch space of runs in flight; ignored and cleared on restart
    results.parquet, results.csv, plot_<metric>.png   the collected table and plots
    .lock                      held (flock) by the driver while it runs

Resumability rests on one rule: a record is written atomically (temp file in the same folder, fsync,
`os.replace`) and only after the run's output notebook is complete and in place and its scraps are read.
So at any instant a record either exists whole or not at all; a run without a record is simply run
again, and its half-written files (in `partial/`) are ignored.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
_FORMAT = 1


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8"))


class SweepLockedError(ValueError):
    """Another driver is running a sweep in this folder."""


class SweepStore:
    """Reads and writes one sweep folder (see the module docstring for its layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._lock_handle = None

    @property
    def records_dir(self) -> Path:
        return self.root / "records"

    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def partial_dir(self) -> Path:
        return self.root / "partial"

    def record_path(self, run_id: str) -> Path:
        return self.records_dir / f"{run_id}.json"

    def notebook_path(self, run_id: str) -> Path:
        return self.notebooks_dir / f"{run_id}.ipynb"

    # -- the manifest --------------------------------------------------------------------------------
    def open(self, manifest: dict[str, Any]) -> bool:
        """Create the folder with `manifest`, or check that an existing one is for the same sweep.

        Returns True when the folder already existed (a resume). Raises ValueError when the existing
        manifest names another notebook content, grid or fixed parameters.
        """
        path = self.root / MANIFEST
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8"))
            diffs = [key for key in ("notebook_sha256", "grid", "fixed") if old.get(key) != manifest.get(key)]
            if diffs:
                what = {"notebook_sha256": "the notebook's content", "grid": "the grid", "fixed": "the fixed parameters"}
                raise ValueError(
                    f"out_dir {self.root} holds another sweep ({', '.join(what[d] for d in diffs)} differ: "
                    f"was grid={old.get('grid')} fixed={old.get('fixed')} notebook {old.get('notebook')}); "
                    "a sweep folder resumes only the same sweep, so choose another out_dir for this one"
                )
            return True
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"format": _FORMAT, "created": _dt.datetime.now().isoformat(timespec="seconds"),
                                 **manifest})
        return False

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.root / MANIFEST).read_text(encoding="utf-8"))

    # -- the driver lock -----------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the folder's lock (released when this process ends, even by kill -9)."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / ".lock", "a+")  # noqa: SIM115  (held until unlock)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise SweepLockedError(f"out_dir {self.root} is in use by a running sweep ({holder}); "
                                   "wait for it or choose another out_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._lock_handle = handle

    def unlock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    # -- records ---------------------------------------------------------------------------------------
    def read_record(self, run_id: str) -> dict[str, Any] | None:
        """The complete record of a run, or None (never written, or not the record of this run id)."""
        try:
            record = json.loads(self.record_path(run_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return record if isinstance(record, dict) and record.get("run_id") == run_id else None

    def finish(self, record: dict[str, Any], notebook_text: bytes | None = None, notebook_file: Path | None = None) -> None:
        """Put the run's output notebook in place (if any), then write its record: in that order, atomically."""
        run_id = record["run_id"]
        if notebook_file is not None and notebook_file.exists():
            self.notebooks_dir.mkdir(parents=True, exist_ok=True)
            os.replace(notebook_file, self.notebook_path(run_id))
        elif notebook_text is not None:
            atomic_write_bytes(self.notebook_path(run_id), notebook_text)
        atomic_write_json(self.record_path(run_id), record)

    def clear_partial(self) -> None:
        """Remove what runs in flight at an earlier kill left behind."""
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        for stray in self.records_dir.glob(".*.tmp") if self.records_dir.exists() else []:
            stray.unlink(missing_ok=True)
        for stray in self.notebooks_dir.glob(".*.tmp") if self.notebooks_dir.exists() else []:
            stray.unlink(missing_ok=True)
