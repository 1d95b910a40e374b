"""Where assets live on disk, how a folder is installed atomically, and how its files are hashed.

Layout: `$WORKBENCH_HOME/assets/<name>/` (default `~/.cache/workbench`) is the *ready folder* of an asset. It
only ever appears complete: a fetch builds everything in a temp folder beside it
(`.<name>.partial-<pid>-<random>`) and moves it into place with one `os.replace`, after writing the marker file
`workbench_asset.json` last. A fetch killed half-way leaves a temp folder, never a ready folder; the next
fetch of that asset removes such leftovers (those whose process is gone).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

MARKER = "workbench_asset.json"
_CHUNK = 1 << 20
_STALE_SECONDS = 24 * 3600


def home() -> Path:
    """The workbench data folder: `$WORKBENCH_HOME`, else `~/.cache/workbench`."""
    value = os.environ.get("WORKBENCH_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "workbench"


def assets_root() -> Path:
    """The folder holding one ready folder per fetched asset."""
    return home() / "assets"


def ready_dir(name: str) -> Path:
    """The ready folder of asset `name` (which may not exist yet)."""
    return assets_root() / name


def sha256_file(path: str | Path, progress: bool = False) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (with a byte progress bar when asked and worth it)."""
    path = Path(path)
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as handle, tqdm(
        total=size, unit="B", unit_scale=True, desc=f"sha256 {path.name}", leave=False,
        disable=not progress or size < 64 * _CHUNK,
    ) as bar:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def concatenate(parts: list[Path], out: Path, desc: str = "") -> str:
    """Write `parts` one after the other into `out`; return the sha256 of the result (hashed while writing)."""
    digest = hashlib.sha256()
    total = sum(p.stat().st_size for p in parts)
    with open(out, "wb") as dst, tqdm(total=total, unit="B", unit_scale=True, desc=desc or out.name,
                                      leave=False, disable=total < 64 * _CHUNK) as bar:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    bar.update(len(chunk))
    return digest.hexdigest()


def manifest(folder: Path, progress: bool = False) -> dict[str, dict[str, Any]]:
    """{relative path: {"sha256", "size"}} for every file under `folder` except the marker."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER)
    return {
        p.relative_to(folder).as_posix(): {"sha256": sha256_file(p, progress), "size": p.stat().st_size}
        for p in files
    }


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The parsed `workbench_asset.json` of a folder, or None if it has none (or an unreadable one)."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_marker(folder: Path, record: dict[str, Any]) -> None:
    """Write the marker file; done last, so its presence means the folder is complete."""
    (folder / MARKER).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def folder_size(folder: Path) -> int:
    """Total bytes of the files under `folder`."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(name: str) -> list[Path]:
    """Remove temp folders of asset `name` left by fetches that died (process gone, or older than a day)."""
    root = assets_root()
    removed = []
    if not root.is_dir():
        return removed
    for entry in root.glob(f".{name}.*-*"):
        kind, _, rest = entry.name[len(name) + 2:].partition("-")
        if kind not in ("partial", "old"):
            continue
        pid = rest.split("-")[0]
        dead = not pid.isdigit() or not _pid_alive(int(pid)) or int(pid) == os.getpid()
        if dead or time.time() - entry.stat().st_mtime > _STALE_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextmanager
def fetch_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock on asset `name` across processes (POSIX `flock`), so concurrent fetches of one
    asset build it once: the others wait, then find it ready. Released when the holder exits or dies."""
    root = assets_root()
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock
        yield
        return
    with open(root / f".{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def staging(name: str) -> Iterator[Path]:
    """A fresh temp folder beside the ready folder of `name`; removed on exit, whatever happens."""
    root = assets_root()
    root.mkdir(parents=True, exist_ok=True)
    clean_stale(name)
    tmp = root / f".{name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install(folder: Path, name: str) -> Path:
    """Move the complete `folder` into place as the ready folder of `name` (replacing an older one)."""
    if read_marker(folder) is None:
        raise RuntimeError(f"refusing to install {folder}: it has no {MARKER}")
    target = ready_dir(name)
    if target.exists():
        old = target.with_name(f".{name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(target, old)
        os.replace(folder, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(folder, target)
    return target
