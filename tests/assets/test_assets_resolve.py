"""resolve_model: asset names, local folders, hub ids and nonsense."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from assets_fakes import make_wheel, register, sha256

from workbench import assets
from workbench.assets import builders
from workbench.assets.registry import Asset, Blob, Part, Source


def test_model_folder_is_returned(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert assets.resolve_model(tmp_path) == tmp_path
    assert assets.resolve_model(str(tmp_path)) == tmp_path


def test_folder_without_config_is_not_a_model_folder(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a model folder"):
        assets.resolve_model(tmp_path)


def test_existing_file_is_not_a_model_folder(tmp_path):
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(ValueError, match="is not a model folder"):
        assets.resolve_model(str(file))


def test_hub_id_is_returned_for_online_use():
    assert assets.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.parametrize("bad", ["smollm-135m", "not a model", "a/b/c"])
def test_anything_else_is_unknown_and_lists_assets(bad):
    with pytest.raises(assets.UnknownAssetError) as info:
        assets.resolve_model(bad)
    assert "smollm2-135m" in str(info.value) and "qwen2.5-coder-1.5b" in str(info.value)


def test_non_model_asset_is_refused_without_fetching(wb_home):
    with pytest.raises(ValueError, match="corpus asset, not a model"):
        assets.resolve_model("udhr")
    assert not (wb_home / "assets").exists()


def test_model_asset_name_resolves_to_its_fetched_folder(tmp_path, wb_home, monkeypatch):
    config = json.dumps({"model_type": "llama"}).encode()
    wheel = make_wheel(tmp_path / "tiny_model-1.0-py3-none-any.whl", {"tiny_model/config.json": config})

    def as_is(asset, blobs, out):
        return builders.copy_blobs(asset, blobs, out)

    monkeypatch.setitem(builders.BUILDERS, "as-is", as_is)
    register(monkeypatch, Asset("tiny-model", "model", "hf", "d", "MIT", (Source("local", (str(wheel),)),),
                                (Blob("config.json", sha256(config), (Part("tiny_model-*.whl",
                                                                           "tiny_model/config.json"),)),),
                                builder="as-is"))
    folder = assets.resolve_model("tiny-model")
    assert Path(folder) == wb_home / "assets" / "tiny-model"
    assert (Path(folder) / "config.json").read_bytes() == config
