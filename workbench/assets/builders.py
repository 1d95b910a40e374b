"""Build recipes: from an asset's checked blobs to the contents of its ready folder.

A builder is `fn(asset, blobs, out) -> dict`: `blobs` maps blob names to checked files in a temp folder,
`out` is the (temp) folder to fill, and the returned dict is merged into workbench_asset.json. Builders are
registered by name in BUILDERS; an Asset names its builder.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.assets.registry import Asset

Builder = Callable[[Asset, dict[str, Path], Path], dict[str, Any]]
BUILDERS: dict[str, Builder] = {}


def builder(name: str) -> Callable[[Builder], Builder]:
    """Register a build recipe under `name`."""

    def wrap(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        return fn

    return wrap


@builder("copy")
def copy_blobs(asset: Asset, blobs: dict[str, Path], out: Path) -> dict[str, Any]:
    """The blobs are the asset: move them into the folder under their blob names (tokenizer files)."""
    for name, path in blobs.items():
        os.replace(path, out / name)
    return {}


@builder("gguf")
def gguf_model(asset: Asset, blobs: dict[str, Path], out: Path) -> dict[str, Any]:
    """Convert blob `model.gguf` to an fp32 HF folder; other blobs (licence texts) are copied beside it."""
    from workbench.assets.convert import gguf_to_hf

    info = gguf_to_hf(blobs["model.gguf"], out)
    for name, path in blobs.items():
        if name != "model.gguf":
            os.replace(path, out / name)
    return {"model": info}


def build(asset: Asset, blobs: dict[str, Path], out: Path) -> dict[str, Any]:
    """Run the builder that `asset` names."""
    # Corpus recipes live in their own modules; importing them registers them.
    from workbench.assets import bibles, corpus_build  # noqa: F401

    try:
        fn = BUILDERS[asset.builder]
    except KeyError:
        raise ValueError(f"asset {asset.name!r} names builder {asset.builder!r}; known: {sorted(BUILDERS)}") from None
    return fn(asset, blobs, out)
