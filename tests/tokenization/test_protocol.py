"""The offset algorithm and input checks shared by every adapter, plus ByteTokenizer (the simplest adapter)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tokenization import (
    ByteTokenizer,
    InputTypeError,
    Tokenizer,
    assign_offsets,
)

from .conftest import SAMPLES, assert_tiles


# --- assign_offsets: hand-worked cases ---
def test_exact_pieces_give_running_spans():
    assert assign_offsets([b"He", b"llo", b" w"], b"Hello w") == [(0, 2), (2, 5), (5, 7)]


def test_exact_pieces_may_split_a_character():
    data = "é!".encode()  # c3 a9 21
    assert assign_offsets([b"\xc3", b"\xa9!"], data) == [(0, 1), (1, 3)]


def test_dummy_prefix_is_charged_to_no_input_byte():
    assert assign_offsets([b" Hello", b" world"], b"Hello world") == [(0, 5), (5, 11)]
    assert assign_offsets([b" ", b"\xc3", b"\xa9"], "é".encode()) == [(0, 0), (0, 1), (1, 2)]
    # input that starts with a space: the first space of the pieces is the dummy one
    assert assign_offsets([b" ", b" lead"], b" lead") == [(0, 0), (0, 5)]


def test_hint_path_splits_a_shared_character_by_piece_lengths():
    # HF style: every byte token of one character carries that character's span
    data = "a😀".encode()
    pieces = [b"A", b"\xf0\x9f", b"\x98\x80"]  # "A": the backend lower-cased nothing but pieces differ
    hints = [(0, 1), (1, 5), (1, 5)]
    assert assign_offsets(pieces, data, hints) == [(0, 1), (1, 3), (3, 5)]
    # SentencePiece style: empty spans, then the whole character on the last byte token
    hints = [(0, 1), (1, 1), (1, 5)]
    assert assign_offsets(pieces, data, hints) == [(0, 1), (1, 3), (3, 5)]


def test_hint_path_gives_dropped_bytes_to_the_token_before():
    # a normalizer collapsed "a   b" to "a b": the backend spans skip two spaces
    data = b"a   b"
    pieces = [b"a", b" b"]
    assert assign_offsets(pieces, data, [(0, 1), (3, 5)]) == [(0, 3), (3, 5)]
    # leading bytes the backend dropped go to the first token; trailing ones to the last
    assert assign_offsets([b"x"], b"  x  ", [(2, 3)]) == [(0, 5)]


def test_hint_path_unsplittable_run_goes_to_its_last_token():
    data = "\ufb01ne".encode()  # "ﬁ" (3 bytes) normalized to "fi"
    assert assign_offsets([b" f", b"ine"], data, [(0, 0), (0, 5)]) == [(0, 0), (0, 5)]


def test_mismatch_without_hints_is_an_error():
    with pytest.raises(RuntimeError, match="do not reproduce"):
        assign_offsets([b"ab"], b"abc")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=30), st.data())
def test_hint_path_always_tiles(data, draw):
    n = len(data)
    k = draw.draw(st.integers(0, 6))
    pieces = [draw.draw(st.binary(max_size=4)) for _ in range(k)]
    hints = [tuple(sorted(draw.draw(st.tuples(st.integers(-2, n + 2), st.integers(-2, n + 2))))) for _ in range(k)]
    offsets = assign_offsets(pieces, data, hints)
    assert len(offsets) == k
    if k:
        assert_tiles(offsets, data)


# --- input checks (before any work) ---
@pytest.fixture
def tok():
    return ByteTokenizer()


@pytest.mark.parametrize("bad", [b"bytes", 3, None, ["a"]])
def test_encode_rejects_non_str(tok, bad):
    with pytest.raises(InputTypeError, match="text must be a str"):
        tok.encode(bad)
    with pytest.raises(ValueError):  # also a ValueError, so the CLI prints it as one line
        tok.encode_with_offsets(bad)


def test_encode_rejects_lone_surrogates(tok):
    with pytest.raises(ValueError, match=r"lone surrogate U\+D800 at character 2.*valid UTF-8"):
        tok.encode("ab\ud800c")


def test_decode_checks_ids(tok):
    with pytest.raises(ValueError, match=r"ids\[1\] = 257 is out of range.*\[0, 257\)"):
        tok.decode([1, 257])
    with pytest.raises(ValueError, match=r"ids\[0\] = -1"):
        tok.decode([-1])
    with pytest.raises(InputTypeError, match=r"ids\[0\] must be an int"):
        tok.decode([1.5])
    with pytest.raises(InputTypeError, match="sequence of int"):
        tok.decode("abc")
    with pytest.raises(ValueError, match="token_id = 300"):
        tok.token_bytes(300)


def test_decode_accepts_numpy_and_torch(tok):
    assert tok.decode(np.array([104, 105])) == "hi"
    assert tok.decode(torch.tensor([104, 105])) == "hi"
    assert tok.token_bytes(np.int64(104)) == b"h"


# --- ByteTokenizer ---
def test_byte_tokenizer_is_the_utf8_bytes(tok):
    assert isinstance(tok, Tokenizer)
    assert tok.vocab_size == 257 and tok.eos_id == 256 and tok.bos_id is None
    assert tok.special_ids == frozenset({256})
    assert tok.encode("hé") == [104, 0xC3, 0xA9]
    assert tok.encode("a<eos>b") == [97, 256, 98]
    assert tok.token_bytes(256) == b"<eos>"


@pytest.mark.parametrize("text", SAMPLES)
def test_byte_tokenizer_round_trip_and_offsets(tok, text):
    data = text.encode()
    ids, offsets = tok.encode_with_offsets(text)
    assert ids == tok.encode(text) == list(data)
    assert tok.decode(ids) == text
    assert offsets == [(i, i + 1) for i in range(len(data))]


def test_decode_can_skip_special_tokens():
    tok = ByteTokenizer(specials=["<bos>", "<eos>"], bos="<bos>", eos="<eos>")
    ids = tok.encode("<bos>hi<eos>")
    assert tok.decode(ids) == "<bos>hi<eos>"
    assert tok.decode(ids, skip_special_tokens=True) == "hi"


def test_byte_tokenizer_specials_and_bos():
    tok = ByteTokenizer(specials=["<bos>", "<eos>", "<eos2>"], bos="<bos>", eos="<eos>")
    assert tok.encode("x", add_special_tokens=True) == [256, 120]
    assert tok.encode("<eos2><eos>") == [258, 257]  # longest special wins
    ids, offsets = tok.encode_with_offsets("a<eos>")
    assert ids == [97, 257] and offsets == [(0, 1), (1, 6)]
    assert "ByteTokenizer(name='bytes', vocab_size=259, bos_id=256, eos_id=257" in repr(tok)


def test_byte_tokenizer_bad_config():
    with pytest.raises(ValueError, match="eos='<end>' must be one of specials"):
        ByteTokenizer(specials=["<eos>"], eos="<end>")
    with pytest.raises(ValueError, match="distinct"):
        ByteTokenizer(specials=["<eos>", "<eos>"])
    with pytest.raises(ValueError, match="single string"):
        ByteTokenizer(specials="<eos>")


def test_byte_tokenizer_has_no_chat_template(tok):
    with pytest.raises(NotImplementedError, match="no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])


def test_byte_tokenizer_to_hf_gives_the_same_ids():
    tok = ByteTokenizer(specials=["<bos>", "<eos>"], bos="<bos>", eos="<eos>")
    hf = tok.to_hf()
    for text in SAMPLES + ["a<eos>b<bos>"]:
        assert hf.encode(text).ids == tok.encode(text)
        assert hf.decode(tok.encode(text), skip_special_tokens=False) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_byte_tokenizer_any_text(text):
    tok = ByteTokenizer(specials=[])
    ids, offsets = tok.encode_with_offsets(text)
    assert tok.decode(ids) == text
    assert_tiles(offsets, text.encode())
