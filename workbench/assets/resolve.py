"""resolve_model: from what a user typed (an asset name, a local folder or a hub id) to what a loader opens."""
from __future__ import annotations

import re
from pathlib import Path

from workbench.assets.errors import AssetTypeError, UnknownAssetError
from workbench.assets.pipeline import path as asset_path
from workbench.assets.registry import ASSETS, get

_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def resolve_model(name_or_path: str | Path) -> str | Path:
    """Resolve a model reference.

    - a model asset name ("smollm2-135m", ...) -> its ready HF folder (fetched first if needed);
    - an existing folder -> that folder, if it is a model folder (has config.json), else ValueError;
    - an "org/name" hub id that is no local path -> returned unchanged, for online use;
    - anything else -> UnknownAssetError listing the known asset names.
    """
    if isinstance(name_or_path, str) and name_or_path in ASSETS:
        asset = get(name_or_path)
        if asset.kind != "model":
            models = [a.name for a in ASSETS.values() if a.kind == "model"]
            raise ValueError(f"name_or_path={name_or_path!r} is a {asset.kind} asset, not a model; "
                             f"model assets: {', '.join(models)}")
        return asset_path(name_or_path)
    if not isinstance(name_or_path, (str, Path)):
        raise AssetTypeError(f"name_or_path must be a str or Path, got {type(name_or_path).__name__}")
    local = Path(name_or_path).expanduser()
    if local.exists():
        if local.is_dir() and (local / "config.json").is_file():
            return local
        raise ValueError(f"{str(local)!r} is not a model folder (expected a folder with config.json, "
                         "model weights and a tokenizer)")
    text = str(name_or_path)
    if isinstance(name_or_path, str) and _HUB_ID.fullmatch(text):
        return text
    raise UnknownAssetError(text, sorted(ASSETS), what="model asset or path")
