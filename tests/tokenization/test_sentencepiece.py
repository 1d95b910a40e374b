"""SentencePieceTokenizer on tiny models trained in the test with byte fallback: one with the identity
normalizer that keeps whitespace (Llama-2/Mistral style), one with SentencePiece's NFKC defaults."""

import unicodedata

import pytest
import sentencepiece as spm
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tokenization import SentencePieceTokenizer, Tokenizer

from .conftest import SAMPLES, assert_tiles, running_spans


@pytest.fixture(scope="module")
def sp(sp_model_bytes):
    return spm.SentencePieceProcessor(model_proto=sp_model_bytes)


@pytest.fixture(scope="module")
def tok(sp_file):
    return SentencePieceTokenizer.from_file(sp_file)


def test_attributes(tok, sp):
    assert isinstance(tok, Tokenizer)
    assert tok.name == "tiny" and tok.vocab_size == 700
    assert (tok.bos_id, tok.eos_id) == (sp.bos_id(), sp.eos_id()) == (1, 2)
    assert tok.special_ids == frozenset({0, 1, 2})  # <unk>, <s>, </s>
    assert tok.token_bytes(sp.piece_to_id("<0xF0>")) == b"\xf0"
    assert tok.token_bytes(sp.piece_to_id("\u2581")) == b" "
    assert tok.token_bytes(1) == b"<s>"
    assert tok.encode("hi", add_special_tokens=True) == [1] + tok.encode("hi")


def test_piece_bytes_known_answer(tok, sp):
    pieces = sp.encode("the café", out_type=str)
    expected = b"".join(p.replace("\u2581", " ").encode() if not p.startswith("<0x") else bytes([int(p[3:5], 16)])
                        for p in pieces)
    assert b"".join(tok.token_bytes(i) for i in tok.encode("the café")) == expected == b" the caf\xc3\xa9"


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_and_offsets(tok, sp, text):
    data = text.encode()
    ids, offsets = tok.encode_with_offsets(text)
    assert ids == tok.encode(text) == sp.encode(text)
    assert tok.decode(ids) == text == sp.decode(ids)
    pieces = [tok.token_bytes(i) for i in ids]
    if text:  # the dummy prefix: pieces spell b" " + text, and the extra space is charged to no input byte
        assert b"".join(pieces) == b" " + data
        assert offsets == running_spans(pieces, shift=1)
        assert [data[s:e] for s, e in offsets[1:]] == pieces[1:]
        assert data[offsets[0][0]:offsets[0][1]] == pieces[0][1:]
    assert_tiles(offsets, data)


def test_dummy_prefix_offsets_known_answer(tok, sp):
    ids, offsets = tok.encode_with_offsets(" x")  # "▁▁x" -> the first "▁" is the dummy
    pieces = [tok.token_bytes(i) for i in ids]
    assert b"".join(pieces) == b"  x"
    assert offsets[0][0] == 0 and offsets[-1][1] == 2
    ids, offsets = tok.encode_with_offsets("😀")  # "▁" then four byte-fallback tokens
    assert [tok.token_bytes(i) for i in ids] == [b" ", b"\xf0", b"\x9f", b"\x98", b"\x80"]
    assert offsets == [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4)]


def test_control_strings_in_text_are_plain_text(tok):
    ids = tok.encode("a<s>b")
    assert 1 not in ids
    assert tok.decode(ids) == "a<s>b"


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\u2581"), max_size=40))
def test_any_text(sp_model_bytes, text):
    tok = SentencePieceTokenizer(spm.SentencePieceProcessor(model_proto=sp_model_bytes))
    ids, offsets = tok.encode_with_offsets(text)
    assert tok.decode(ids) == text
    assert_tiles(offsets, text.encode())


def test_space_marker_in_text_still_tiles(tok):
    text = "a\u2581b"  # SentencePiece reads U+2581 as its space marker: the round trip gives "a b"
    ids, offsets = tok.encode_with_offsets(text)
    assert tok.decode(ids) == "a b"
    assert_tiles(offsets, text.encode())


# --- NFKC model: the text is normalized, offsets come from SentencePiece's spans ---
@pytest.fixture(scope="module")
def nfkc_tok(sp_nfkc_model_bytes):
    return SentencePieceTokenizer(spm.SentencePieceProcessor(model_proto=sp_nfkc_model_bytes), name="nfkc")


@pytest.mark.parametrize("text", SAMPLES + ["ＦＵＬＬ  width \ufb01ne   ligature  "])
def test_nfkc_offsets_tile(nfkc_tok, text):
    ids, offsets = nfkc_tok.encode_with_offsets(text)
    assert ids == nfkc_tok.encode(text)
    assert_tiles(offsets, text.encode(), normalizing=True)


def test_nfkc_spans_hold_what_each_token_normalizes_from(nfkc_tok):
    text = "ＦＵＬＬ   width"
    ids, offsets = nfkc_tok.encode_with_offsets(text)
    data = text.encode()
    assert nfkc_tok.decode(ids) == "FULL width"  # normalized: NFKC, collapsed spaces
    for i, (s, e) in zip(ids, offsets):
        piece = nfkc_tok.token_bytes(i).decode().replace(" ", "")
        assert unicodedata.normalize("NFKC", data[s:e].decode()).replace(" ", "") == piece


# --- construction errors ---
def test_from_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        SentencePieceTokenizer.from_file(tmp_path / "missing.model")
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="is not a SentencePiece model"):
        SentencePieceTokenizer.from_file(bad)
    with pytest.raises(ValueError, match="processor must be"):
        SentencePieceTokenizer("x")


def test_from_folder(tmp_path, sp_model_bytes):
    (tmp_path / "m.model").write_bytes(sp_model_bytes)
    assert SentencePieceTokenizer.from_folder(tmp_path).vocab_size == 700
    (tmp_path / "n.model").write_bytes(sp_model_bytes)
    with pytest.raises(ValueError, match="exactly one .model file"):
        SentencePieceTokenizer.from_folder(tmp_path)


def test_no_chat_template(tok):
    with pytest.raises(NotImplementedError, match="SentencePieceTokenizer 'tiny' has no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])
