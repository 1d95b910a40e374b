"""TiktokenTokenizer on tiny Encodings built in the test (no BPE files, no network)."""

import os

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tokenization import HFTokenizer, TiktokenTokenizer, Tokenizer

from .conftest import SAMPLES, assert_tiles, running_spans


def test_hand_made_ranks_known_answer():
    ranks = {bytes([b]): b for b in range(256)}
    for token in (b"he", b"ll", b"hell", b"hello", b" w"):
        ranks[token] = len(ranks)
    enc = tiktoken.Encoding(name="hand", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 261})
    tok = TiktokenTokenizer(enc)
    assert tok.vocab_size == 262 and tok.eos_id == 261 and tok.bos_id is None
    assert tok.special_ids == frozenset({261})
    assert tok.encode("hello") == [259]
    assert tok.encode("hellx") == [258, ord("x")]
    ids, offsets = tok.encode_with_offsets("hello\u00e9<|endoftext|>")
    assert ids == [259, 0xC3, 0xA9, 261]
    assert offsets == [(0, 5), (5, 6), (6, 7), (7, 20)]
    assert tok.decode(ids) == "hello\u00e9<|endoftext|>"


@pytest.fixture(scope="module")
def tok(tiny_encoding):
    return TiktokenTokenizer(tiny_encoding)


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_offsets_and_backend_ids(tok, tiny_encoding, text):
    data = text.encode()
    ids, offsets = tok.encode_with_offsets(text)
    assert ids == tok.encode(text) == tiny_encoding.encode(text)
    assert tok.decode(ids) == text == tiny_encoding.decode(ids)
    pieces = [tok.token_bytes(i) for i in ids]
    assert b"".join(pieces) == data
    assert offsets == running_spans(pieces)
    assert_tiles(offsets, data)


@pytest.mark.parametrize("text", SAMPLES)
def test_same_segmentation_as_the_hf_bpe_it_was_built_from(tok, byte_bpe, text):
    # the ranks are the HF merges in order, and the split regex is GPT-2's: two libraries, one segmentation
    hf = HFTokenizer(byte_bpe)
    assert [tok.token_bytes(i) for i in tok.encode(text)] == [hf.token_bytes(i) for i in hf.encode(text)]


def test_specials_in_text_are_special_tokens(tok):
    ids = tok.encode("a<|endoftext|>")
    assert ids[-1] == tok.eos_id


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_text(tiny_encoding, text):
    tok = TiktokenTokenizer(tiny_encoding)
    ids, offsets = tok.encode_with_offsets(text)
    assert tok.decode(ids) == text
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode()
    assert_tiles(offsets, text.encode())


def test_bos_and_holes():
    ranks = {bytes([b]): b for b in range(256)}
    enc = tiktoken.Encoding(name="holes", pat_str=r"\S+|\s+", mergeable_ranks=ranks,
                            special_tokens={"<|begin_of_text|>": 300, "<|end_of_text|>": 301})
    tok = TiktokenTokenizer(enc, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>")
    assert isinstance(tok, Tokenizer)
    assert (tok.bos_id, tok.eos_id, tok.vocab_size) == (300, 301, 302)
    assert tok.encode("a", add_special_tokens=True) == [300, 97]
    with pytest.raises(ValueError, match="token_id 280 is unused"):
        tok.token_bytes(280)
    with pytest.raises(ValueError, match="bos_token='<s>' is not a special token"):
        TiktokenTokenizer(enc, bos_token="<s>")


def test_from_bpe_file(tmp_path):
    import base64

    ranks = [bytes([b]) for b in range(256)] + [b"ab", b"abc"]
    path = tmp_path / "tiny.tiktoken"
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for r, t in enumerate(ranks)))
    tok = TiktokenTokenizer.from_bpe_file(path, r"\S+|\s+", {"<eot>": 258}, eos_token="<eot>")
    assert tok.encode("abc abd") == [257, 32, 256, ord("d")]
    assert tok.eos_id == 258 and tok.name == "tiny"
    with pytest.raises(ValueError, match="does not exist"):
        TiktokenTokenizer.from_bpe_file(tmp_path / "nope", r"\S+")


def test_from_name_never_downloads(tmp_path, monkeypatch):
    import tiktoken.load
    import tiktoken.registry

    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "r50k_base", raising=False)  # not served from memory
    before_env, before_read = os.environ.get("TIKTOKEN_CACHE_DIR"), tiktoken.load.read_file
    with pytest.raises(ValueError, match="expected offline as file .* missing"):
        TiktokenTokenizer.from_name("r50k_base", tmp_path)
    assert os.environ.get("TIKTOKEN_CACHE_DIR") == before_env  # restored
    assert tiktoken.load.read_file is before_read


def test_from_name_errors(tmp_path):
    with pytest.raises(ValueError, match="encoding_name='cl99k' is not a tiktoken encoding"):
        TiktokenTokenizer.from_name("cl99k", tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        TiktokenTokenizer.from_name("cl100k_base", tmp_path / "nope")
    with pytest.raises(ValueError, match="no workbench_asset.json"):
        TiktokenTokenizer.from_folder(tmp_path)
    (tmp_path / "workbench_asset.json").write_text('{"name": "x", "kind": "tokenizer", "format": "tiktoken"}')
    with pytest.raises(ValueError, match='no "encoding" field'):
        TiktokenTokenizer.from_folder(tmp_path)
    with pytest.raises(ValueError, match="encoding must be a tiktoken.Encoding"):
        TiktokenTokenizer("cl100k_base")


def test_no_chat_template(tok):
    with pytest.raises(NotImplementedError, match="no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])
