"""load_tokenizer: every accepted kind of source, and clear errors for the rest."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import sentencepiece as spm

from workbench.tokenization import (
    ByteTokenizer,
    HFTokenizer,
    SentencePieceTokenizer,
    TiktokenTokenizer,
    load_tokenizer,
)
from workbench.tokenization import load as load_module


def test_tokenizer_instances_pass_through():
    tok = ByteTokenizer()
    assert load_tokenizer(tok) is tok


def test_backend_objects(byte_bpe, tiny_encoding, sp_model_bytes):
    assert isinstance(load_tokenizer(byte_bpe), HFTokenizer)
    assert isinstance(load_tokenizer(tiny_encoding), TiktokenTokenizer)
    assert isinstance(load_tokenizer(spm.SentencePieceProcessor(model_proto=sp_model_bytes)), SentencePieceTokenizer)


@pytest.fixture
def hf_folder(tmp_path, byte_bpe) -> Path:
    folder = tmp_path / "my-hf"
    folder.mkdir()
    byte_bpe.save(str(folder / "tokenizer.json"))
    return folder


def test_hf_folder_and_file(hf_folder, byte_bpe):
    for source in (hf_folder, str(hf_folder), hf_folder / "tokenizer.json"):
        tok = load_tokenizer(source)
        assert isinstance(tok, HFTokenizer) and tok.name == "my-hf"
        assert tok.encode("Hello wörld") == byte_bpe.encode("Hello wörld").ids


def test_sentencepiece_folder_and_file(tmp_path, sp_file):
    assert isinstance(load_tokenizer(sp_file), SentencePieceTokenizer)
    folder = tmp_path / "spfolder"
    folder.mkdir()
    (folder / "x.model").write_bytes(sp_file.read_bytes())
    assert load_tokenizer(folder).name == "spfolder"


def _asset_folder(folder: Path, meta: dict) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "workbench_asset.json").write_text(json.dumps(meta))
    return folder


def test_workbench_asset_json_decides_the_format(tmp_path, sp_file, hf_folder):
    sp_folder = _asset_folder(tmp_path / "a", {"name": "mistral-x", "kind": "tokenizer", "format": "sentencepiece",
                                               "file": "m.model"})
    (sp_folder / "m.model").write_bytes(sp_file.read_bytes())
    tok = load_tokenizer(sp_folder)
    assert isinstance(tok, SentencePieceTokenizer) and tok.name == "mistral-x"

    _asset_folder(hf_folder, {"name": "tiny-model", "kind": "model", "format": "hf"})
    tok = load_tokenizer(hf_folder)
    assert isinstance(tok, HFTokenizer) and tok.name == "tiny-model"

    corpus = _asset_folder(tmp_path / "c", {"name": "udhr", "kind": "corpus", "format": "parquet"})
    with pytest.raises(ValueError, match="holds a corpus asset, not a tokenizer"):
        load_tokenizer(corpus)
    odd = _asset_folder(tmp_path / "d", {"name": "x", "kind": "tokenizer", "format": "wordpiece"})
    with pytest.raises(ValueError, match="format 'wordpiece'; tokenizer formats are"):
        load_tokenizer(odd)


def test_unrecognized_folders_and_files(tmp_path):
    with pytest.raises(ValueError, match="cannot tell its format"):
        load_tokenizer(tmp_path)
    other = tmp_path / "vocab.txt"
    other.write_text("a\nb\n")
    with pytest.raises(ValueError, match="expected a tokenizer.json or a SentencePiece .model"):
        load_tokenizer(other)
    tiktoken_like = tmp_path / "tokenizer.model"
    tiktoken_like.write_text("IQ== 0\nIg== 1\n")  # Llama-3's tiktoken-format tokenizer.model looks like this
    with pytest.raises(ValueError, match="is a tiktoken BPE file, not SentencePiece"):
        load_tokenizer(tiktoken_like)
    with pytest.raises(ValueError, match="no such file or folder"):
        load_tokenizer(str(tmp_path / "missing" / "tokenizer.json"))


def test_bad_source_types():
    with pytest.raises(ValueError, match="source: cannot load a tokenizer from a int; expected a Tokenizer"):
        load_tokenizer(3)


# --- asset names, through a stand-in for workbench.assets ---
@pytest.fixture
def fake_assets(monkeypatch, tmp_path, hf_folder):
    records = {
        "tiny-hf": SimpleNamespace(name="tiny-hf", kind="tokenizer", format="hf", extra={}),
        "udhr": SimpleNamespace(name="udhr", kind="corpus", format="parquet", extra={}),
        "cl100k": SimpleNamespace(name="cl100k", kind="tokenizer", format="tiktoken",
                                  extra={"encoding": "cl100k_base"}),
    }
    _asset_folder(hf_folder, {"name": "tiny-hf", "kind": "tokenizer", "format": "hf"})
    fetched = []

    def get(name):
        if name not in records:
            raise ValueError(f"unknown asset {name!r}")
        return records[name]

    def path(name, fetch=True):
        fetched.append(name)
        if name == "tiny-hf":
            return hf_folder
        (tmp_path / name).mkdir(exist_ok=True)
        return tmp_path / name  # an empty folder: loading from it must fail clearly, without a download

    fake = SimpleNamespace(get=get, path=path, list_assets=lambda: list(records.values()), fetched=fetched)
    monkeypatch.setattr(load_module, "_assets", lambda: fake)
    return fake


def test_asset_name(fake_assets):
    tok = load_tokenizer("tiny-hf")
    assert isinstance(tok, HFTokenizer) and tok.name == "tiny-hf"
    assert fake_assets.fetched == ["tiny-hf"]


def test_corpus_asset_is_refused(fake_assets):
    with pytest.raises(ValueError, match="source='udhr' is a corpus asset"):
        load_tokenizer("udhr")


def test_tiktoken_encoding_name_goes_to_the_asset_holding_it(fake_assets, monkeypatch):
    import tiktoken.registry

    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "cl100k_base", raising=False)
    with pytest.raises(ValueError, match="cl100k_base.tiktoken, expected offline as file 9b5ad71b2ce5302211f9c61530b329a4922fc6a4"):
        load_tokenizer("cl100k_base")
    assert fake_assets.fetched == ["cl100k"]


def test_unknown_name_lists_what_is_known(fake_assets):
    with pytest.raises(ValueError) as err:
        load_tokenizer("no-such-tokenizer")
    message = str(err.value)
    assert "source='no-such-tokenizer' is not a known tokenizer" in message
    assert "a tiktoken encoding name" in message  # the accepted forms
    assert "['tiny-hf', 'cl100k']" in message and "cl100k_base" in message  # known names


def test_unknown_name_without_asset_registry(monkeypatch):
    monkeypatch.setattr(load_module, "_assets", lambda: None)
    with pytest.raises(ValueError, match="no asset registry available"):
        load_tokenizer("no-such-tokenizer")
