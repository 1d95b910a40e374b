"""BPETokenizer: the exported tokenizer.json gives exactly the same ids under HF `tokenizers`; the merge rule
equals the classic rank-by-rank application and tiktoken's; round trips, offsets, specials, persistence."""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tokenization import Tokenizer, load_tokenizer
from workbench.tokenization.bpe import BPETokenizer
from workbench.tokenization.bpe_train import train_bpe
from workbench.tokenization.pretokenize import GPT2_PATTERN

from .conftest import SAMPLES, assert_tiles, training_text

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

HELD_OUT = "\n".join(SAMPLES) + (
    "\n\n\n   \t\t  \n" + " " * 40 + "indented after a run of forty spaces\n"
    "Ünïcödé wörds, Ελληνικά, русский текст, עברית, العربية, हिन्दी, 한국어, ไทย\n"
    "numbers 1234567890 3.14159 1,000,000 and 0x1F; symbols ¿¡«»“”…—–·•†‡\n"
    "<|im_start|>user\nHi there!<|im_end|><|endoftext|>trailing <|endoftext"
    "\u2028line separator\u3000ideographic space\u00a0\u00a0nbsp run\r\n\r\n"
    "don't DON'T we'LL it's I'M they've  'quoted'  "
)


@pytest.fixture(scope="module")
def trained() -> BPETokenizer:
    return train_bpe([training_text()], 700, special_tokens=SPECIALS, bos="<|im_start|>",
                     eos="<|endoftext|>", progress=False).tokenizer


def rank_by_rank(tok: BPETokenizer, piece: bytes) -> list[int]:
    """The classic reference: apply every merge in rank order to the whole pre-token, left to right."""
    ids = list(piece)
    for a, b in tok.merges:
        c = tok._ranks[(a, b)][1]
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:
                out.append(c)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return ids


def test_protocol(trained):
    assert isinstance(trained, Tokenizer)
    assert trained.vocab_size == 700
    assert trained.special_ids == frozenset({697, 698, 699})
    assert trained.bos_id == 698 and trained.eos_id == 697
    assert [trained.token_bytes(i) for i in (0, 65, 255)] == [b"\x00", b"A", b"\xff"]
    assert trained.token_bytes(699) == b"<|im_end|>"


def test_hf_export_gives_identical_ids(trained, tmp_path):
    hf = trained.to_hf()
    for text in [HELD_OUT, *SAMPLES]:
        ids = trained.encode(text)
        assert hf.encode(text, add_special_tokens=False).ids == ids
        assert trained.decode(ids) == text
        assert hf.decode(ids, skip_special_tokens=False) == text
    assert hf.encode("hi", add_special_tokens=True).ids == trained.encode("hi", add_special_tokens=True)
    assert trained.encode("hi", add_special_tokens=True)[0] == trained.bos_id
    # the saved folder loads through the project's loader as an HF tokenizer with the same ids and bytes
    folder = trained.save(tmp_path / "bpe")
    loaded = load_tokenizer(folder)
    assert type(loaded).__name__ == "HFTokenizer"
    ids = trained.encode(HELD_OUT)
    assert loaded.encode(HELD_OUT) == ids
    assert loaded.bos_id == trained.bos_id and loaded.eos_id == trained.eos_id
    assert all(loaded.token_bytes(i) == trained.token_bytes(i) for i in range(trained.vocab_size))
    again = BPETokenizer.load(folder)
    assert again.encode(HELD_OUT) == ids and again.merges == trained.merges


def test_gpt2_pattern_export():
    tok = train_bpe([training_text()], 600, pattern=GPT2_PATTERN, progress=False).tokenizer
    assert tok.to_hf().encode(HELD_OUT).ids == tok.encode(HELD_OUT)


@functools.lru_cache(maxsize=1)
def small_pair():
    tok = train_bpe([training_text()], 500, special_tokens=["<|endoftext|>"], progress=False).tokenizer
    return tok, tok.to_hf()


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_hf_equality_on_random_text(text):
    tok, hf = small_pair()
    assert hf.encode(text).ids == tok.encode(text)


def test_merge_rule_equals_rank_by_rank_and_tiktoken(trained):
    import tiktoken

    ranks = {trained.token_bytes(i): i for i in range(trained.num_base_tokens)}
    enc = tiktoken.Encoding(name="mine", pat_str=trained.pattern, mergeable_ranks=ranks, special_tokens={})
    rng = random.Random(0)
    words = [p.encode() for p in trained._pre.split(training_text())][:3000]
    words += [bytes(rng.choice(b"abcdefghij ") for _ in range(rng.randint(1, 200))) for _ in range(200)]
    for word in words:
        expected = rank_by_rank(trained, word)
        assert trained.bpe(word) == expected
        assert trained._bpe_heap(list(word)) == expected  # the long-piece path on short pieces too
    plain = HELD_OUT.replace("<|", "").replace("|>", "")
    assert enc.encode(plain, disallowed_special=()) == trained.encode(plain)


def test_long_pretoken_uses_heap_path(trained):
    long = "ab" * 3000 + "x" * 5000
    ids = trained.encode(long)
    assert trained.decode(ids) == long
    assert trained.to_hf().encode(long, add_special_tokens=False).ids == ids
    assert trained._bpe_scan(list(long[:1000].encode())) == trained._bpe_heap(list(long[:1000].encode()))


def test_duplicate_merge_reuses_the_id():
    a, b, c = 97, 98, 99
    merges = [(a, b), (b, c), (256, c), (a, 257)]  # "abc" made twice: (ab, c) and (a, bc)
    tok = BPETokenizer(merges, pattern=r"\S+")
    assert tok.vocab_size == 259 and tok.token_id(b"abc") == 258
    hf = tok.to_hf()
    for text in ["abc", "bcabc", "abcbc abbc aabc", "cbabcab"]:
        assert hf.encode(text).ids == tok.encode(text), text
        assert tok.decode(tok.encode(text)) == text
    assert tok.encode("abc") == [258]
    assert tok.encode("abcbc") == [258, 257]


def test_offsets_and_specials(trained):
    data = HELD_OUT.encode()
    ids, offsets = trained.encode_with_offsets(HELD_OUT)
    assert ids == trained.encode(HELD_OUT)
    assert_tiles(offsets, data)
    assert [data[s:e] for s, e in offsets] == [trained.token_bytes(i) for i in ids]
    ids = trained.encode("a<|im_end|>b<|endoftext|>")
    assert 699 in ids and 697 in ids
    assert trained.encode("") == [] and trained.decode([]) == ""


def test_bad_input(trained):
    with pytest.raises(ValueError, match="not valid UTF-8"):
        trained.encode("bad \udc80")
    with pytest.raises(ValueError, match="out of range"):
        trained.decode([700])
    with pytest.raises(ValueError, match="names a token that does not exist"):
        BPETokenizer([(97, 300)])
    with pytest.raises(ValueError, match="repeats an earlier merge"):
        BPETokenizer([(97, 98), (97, 98)])
    with pytest.raises(ValueError, match="eos='<x>' must be one of special_tokens"):
        BPETokenizer([], eos="<x>")
    with pytest.raises(ValueError, match="no workbench_bpe.json"):
        BPETokenizer.load("/nonexistent/folder")
