"""The asset table: required names, well-formed entries, tiktoken pins equal tiktoken's own expectations."""
from __future__ import annotations

import contextlib
import hashlib
import re

import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public

from workbench import assets
from workbench.assets.builders import BUILDERS, build  # noqa: F401  (build imports the corpus recipes)
from workbench.assets.registry import CLIENTS

REQUIRED = {
    "model": ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma3-270m"],
    "tokenizer": ["gpt2", "r50k", "p50k", "cl100k", "o200k", "llama3", "qwen3", "gemma3", "gpt4o", "mistral-v1",
                  "mistral-v3"],
    "corpus": ["udhr", "bible-kjv", "english-prose", "cpython-stdlib", "humaneval"],
}
FORMATS = {"model": {"hf"}, "tokenizer": {"hf", "tiktoken", "sentencepiece"}, "corpus": {"parquet"}}


def test_required_assets_registered_with_their_kind():
    for kind, names in REQUIRED.items():
        for name in names:
            assert assets.get(name).kind == kind, name
    assert assets.DEFAULT_MODEL == "smollm2-135m"
    assert {a.name for a in assets.list_assets("model")} >= set(REQUIRED["model"])


def test_entries_are_well_formed():
    import workbench.assets.bibles
    import workbench.assets.corpus_build  # noqa: F401

    for asset in assets.list_assets():
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", asset.name), asset.name
        assert asset.format in FORMATS[asset.kind], asset.name
        assert asset.description and asset.license, asset.name
        assert asset.builder in BUILDERS, asset.name
        for source in asset.sources:
            assert source.client in CLIENTS and source.client != "local", asset.name
            for package in source.packages:  # exact versions only
                assert re.search(r"(==|@|=)\d", package), (asset.name, package)
        for blob in asset.blobs:
            assert re.fullmatch(r"[0-9a-f]{64}", blob.sha256 or ""), (asset.name, blob.name)
            assert blob.parts, (asset.name, blob.name)
        if asset.kind == "corpus":
            assert asset.extra["file"].endswith(".parquet") and asset.extra["schema"], asset.name
        if asset.format == "sentencepiece":
            assert asset.extra["file"] in asset.sha256, asset.name
    assert not [a for a in assets.list_assets() if a.kind == "corpus" and not a.sources and a.blobs]


def test_ggufs_pinned_to_the_documented_hashes():
    # The sha256 values of the GGUF files as documented in ASSETS.md (shared with the project).
    documented = {
        "smollm2-135m": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "qwen2.5-coder-0.5b": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "qwen2.5-coder-1.5b": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "gemma3-270m": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    }
    for name, sha in documented.items():
        assert assets.get(name).sha256["model.gguf"] == sha
    assert len(assets.get("qwen2.5-coder-1.5b").blobs[0].parts) == 22
    assert len(assets.get("qwen2.5-coder-0.5b").blobs[0].parts) == 6


def _tiktoken_expectations(encoding: str) -> set[tuple[str, str]]:
    """(cache file name, expected sha256) of every file tiktoken reads to build `encoding`."""
    seen = []

    def record(blobpath, expected_hash=None):
        seen.append((hashlib.sha1(blobpath.encode()).hexdigest(), expected_hash))
        return b""

    original = tiktoken.load.read_file_cached
    tiktoken.load.read_file_cached = record
    try:
        with contextlib.suppress(ValueError):  # gpt2's empty encoder.json does not parse; the reads are what count
            tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[encoding]()
    finally:
        tiktoken.load.read_file_cached = original
    return set(seen)


@pytest.mark.parametrize("name", ["gpt2", "r50k", "p50k", "cl100k", "o200k"])
def test_tiktoken_blobs_are_named_and_pinned_as_tiktoken_expects(name):
    asset = assets.get(name)
    encoding = asset.extra["encoding"]
    assert encoding in tiktoken.list_encoding_names()
    expected = _tiktoken_expectations(encoding)
    assert expected, encoding
    assert {(b.name, b.sha256) for b in asset.blobs} == expected


def test_unknown_name_lists_known_names():
    with pytest.raises(assets.UnknownAssetError) as info:
        assets.get("smollm3-1b")
    message = str(info.value)
    assert "smollm3-1b" in message
    for name in ["smollm2-135m", "cl100k", "udhr", "humaneval"]:
        assert name in message
    assert isinstance(info.value, ValueError)


def test_list_assets_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        assets.list_assets("dataset")


def test_asset_to_dict_is_json_safe():
    import json

    data = json.loads(json.dumps(assets.get("qwen2.5-coder-0.5b").to_dict()))
    assert data["name"] == "qwen2.5-coder-0.5b" and data["kind"] == "model"
