"""The adapters on the real tokenizers the workbench ships as assets (fetched once into the asset cache).

Backends are called directly for the expected ids; two libraries that implement the same vocabulary
(tiktoken's o200k and the HF GPT-4o tokenizer; gpt2 and r50k) are compared with each other.
"""

from __future__ import annotations

import json
import os
import unicodedata

import pytest

from workbench.tokenization import (
    HFTokenizer,
    SentencePieceTokenizer,
    TiktokenTokenizer,
    load_tokenizer,
)

from .conftest import SAMPLES, assert_tiles, running_spans

pytestmark = pytest.mark.slow

TIKTOKEN = ["gpt2", "r50k", "p50k", "cl100k", "o200k"]
HF = ["llama3", "qwen3", "gemma3", "gpt4o", "smollm2-135m"]
SENTENCEPIECE = ["mistral-v1", "mistral-v2", "mistral-v3", "mistral-v7"]
NFC = ["qwen3"]
BYTE_LEVEL = TIKTOKEN + ["llama3", "qwen3", "gpt4o", "smollm2-135m"]  # token bytes spell the input exactly

_loaded: dict[str, object] = {}


def real(name: str):
    if name not in _loaded:
        _loaded[name] = load_tokenizer(name)
    return _loaded[name]


_backends: dict[str, object] = {}


def backend_encode(name: str):
    """An encode function straight from the backend library, loaded from the same files without the adapter."""
    if name in _backends:
        return _backends[name]
    from workbench import assets

    folder = assets.path(name)
    meta = json.loads((folder / "workbench_asset.json").read_text())
    tok = real(name)
    if isinstance(tok, TiktokenTokenizer):  # a fresh Encoding from tiktoken's own constructor, not its registry
        import tiktoken
        from tiktoken_ext.openai_public import ENCODING_CONSTRUCTORS

        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
        try:
            enc = tiktoken.Encoding(**ENCODING_CONSTRUCTORS[meta["encoding"]]())
        finally:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        fn = lambda text: enc.encode(text, allowed_special="all")
    elif isinstance(tok, HFTokenizer):
        from tokenizers import Tokenizer

        hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
        fn = lambda text: hf.encode(text, add_special_tokens=False).ids
    else:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(folder / meta["file"]))
        fn = sp.encode
    _backends[name] = fn
    return fn


@pytest.mark.parametrize("name", TIKTOKEN + HF + SENTENCEPIECE)
def test_round_trip_offsets_and_backend_ids(name):
    tok = real(name)
    for text in SAMPLES:
        data = text.encode()
        ids, offsets = tok.encode_with_offsets(text)
        assert ids == tok.encode(text) == backend_encode(name)(text), text
        # Qwen's tokenizers normalize to NFC: "e" + combining acute comes back as "é"
        expected = unicodedata.normalize("NFC", text) if name in NFC else text
        assert tok.decode(ids) == expected
        assert_tiles(offsets, data)
        pieces = [tok.token_bytes(i) for i in ids]
        if name in BYTE_LEVEL and expected == text:
            assert b"".join(pieces) == data
            assert offsets == running_spans(pieces)


@pytest.mark.parametrize("name", TIKTOKEN + HF + SENTENCEPIECE)
def test_every_token_has_bytes(name):
    tok = real(name)
    sizes, holes = [], []
    for i in range(tok.vocab_size):
        try:
            sizes.append(len(tok.token_bytes(i)))
        except ValueError:  # unused ids (cl100k and o200k have a few, in tiktoken and as HF "gpt4o")
            holes.append(i)
    assert min(sizes) >= 1 and len(holes) <= 0.001 * tok.vocab_size


def test_known_answers():
    assert real("gpt2").encode("hello world") == [31373, 995]
    assert real("cl100k").encode("hello world") == [15339, 1917]
    assert real("gpt2").eos_id == 50256
    assert real("cl100k").eos_id == 100257
    assert real("llama3").bos_id == 128000


def test_gpt2_and_r50k_are_the_same_vocabulary():
    for text in SAMPLES:
        assert real("gpt2").encode(text) == real("r50k").encode(text)


def test_o200k_in_tiktoken_and_in_hf_agree():
    tiktoken_tok, hf_tok = real("o200k"), real("gpt4o")
    for text in SAMPLES:
        assert [tiktoken_tok.token_bytes(i) for i in tiktoken_tok.encode(text)] == [
            hf_tok.token_bytes(i) for i in hf_tok.encode(text)
        ]


@pytest.mark.parametrize("name", SENTENCEPIECE)
def test_sentencepiece_dummy_prefix(name):
    tok = real(name)
    assert isinstance(tok, SentencePieceTokenizer)
    ids, offsets = tok.encode_with_offsets("Hello world")
    pieces = [tok.token_bytes(i) for i in ids]
    assert pieces == [b" Hello", b" world"]
    assert offsets == [(0, 5), (5, 11)]
    assert (tok.bos_id, tok.eos_id) == (1, 2)
    assert tok.encode("Hello", add_special_tokens=True)[0] == 1


def test_smollm2_chat_template():
    tok = real("smollm2-135m")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 😀"}]
    expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi 😀<|im_end|>\n<|im_start|>assistant\n"
    assert tok.chat_text(messages) == expected
    ids = tok.apply_chat_template(messages)
    assert ids == tok.encode(expected)
    assert ids.count(tok.backend.token_to_id("<|im_start|>")) == 3


def test_llama3_chat_template():
    tok = real("llama3")
    text = tok.chat_text([{"role": "user", "content": "Hi"}])
    assert text.startswith("<|begin_of_text|><|start_header_id|>")
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert "Hi<|eot_id|>" in text
    assert tok.apply_chat_template([{"role": "user", "content": "Hi"}])[0] == 128000


@pytest.mark.parametrize("name", TIKTOKEN + SENTENCEPIECE)
def test_no_chat_template_outside_hf(name):
    with pytest.raises(NotImplementedError, match="no chat template"):
        real(name).apply_chat_template([{"role": "user", "content": "Hi"}])


def test_tiktoken_encoding_names_resolve_to_assets():
    tok = load_tokenizer("cl100k_base")
    assert tok.name == "cl100k" and tok.encode("hello world") == [15339, 1917]
