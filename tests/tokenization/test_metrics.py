"""Metrics on inputs small enough to compute by hand (the byte tokenizer: one token per UTF-8 byte)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from workbench.tokenization import ByteTokenizer, InputTypeError
from workbench.tokenization import metrics as M
from workbench.tokenization.bpe import BPETokenizer

BYTES = ByteTokenizer(specials=(), name="bytes")  # vocab 256


def value(frame: pd.DataFrame, metric: str, **keys) -> float:
    rows = frame[frame["metric"] == metric]
    for k, v in keys.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1, rows
    return float(rows["value"].iloc[0])


def test_compression_by_hand():
    frame = M.compression(BYTES, ["héllo", "ab"])  # 6 + 2 bytes, 5 + 2 chars, one token per byte
    assert list(frame.columns) == ["tokenizer", "metric", "value"]
    assert value(frame, "tokens") == 8 and value(frame, "bytes") == 8 and value(frame, "chars") == 7
    assert value(frame, "bytes_per_token") == 1.0
    assert value(frame, "chars_per_token") == 7 / 8
    # a tokenizer with "ab" and "abc" merged: "abc abc" -> [abc, " ", abc] = 3 tokens for 7 bytes
    tok = BPETokenizer([(97, 98), (256, 99)], pattern=r"\S+|\s+")
    assert value(M.compression(tok, "abc abc"), "bytes_per_token") == 7 / 3


def test_fertility_by_hand():
    frame = M.fertility(BYTES, "ab c  é")  # words: ab (2 tokens), c (1), é (2 bytes -> 2 tokens)
    assert value(frame, "words") == 3
    assert value(frame, "fertility") == pytest.approx(5 / 3)
    assert value(frame, "continued_words") == pytest.approx(2 / 3)
    tok = BPETokenizer([(32, 97), (256, 98)], pattern=r"\S+|\s+")  # spaces apart: "ab" is 2 tokens
    tok2 = BPETokenizer([(32, 97), (256, 98)], pattern=r" ?\S+|\s+")  # " ab" one token: space + word
    assert value(M.fertility(tok2, "x ab ac"), "fertility") == pytest.approx((1 + 1 + 2) / 3)
    assert value(M.fertility(tok, "x ab"), "continued_words") == pytest.approx(1 / 2)


def test_word_spans_are_byte_spans():
    text = "é  日本\tx\u3000y"
    spans = M.word_spans(text)
    data = text.encode()
    assert [data[s:e].decode() for s, e in spans] == ["é", "日本", "x", "y"]
    assert M.tokens_per_word([(0, 2), (2, 3), (3, 3), (3, 6)], [(0, 1), (3, 6)]) == [1, 1]


def test_vocabulary_utilisation_by_hand():
    frame = M.vocabulary_utilisation(BYTES, ["abcab", "a"])
    assert value(frame, "vocab_used") == 3
    assert value(frame, "vocab_utilisation") == 3 / 256


def test_entropy_by_hand():
    frame = M.entropy(BYTES, "abab")  # p = (1/2, 1/2): every entropy is 1 bit
    assert value(frame, "shannon_entropy") == pytest.approx(1.0)
    assert value(frame, "renyi_entropy", alpha=2.5) == pytest.approx(1.0)
    assert value(frame, "shannon_efficiency") == pytest.approx(1 / 8)  # log2(256) = 8
    frame = M.entropy(BYTES, "aab", alpha=2)  # p = (2/3, 1/3)
    assert value(frame, "shannon_entropy") == pytest.approx(math.log2(3) - 2 / 3)
    assert value(frame, "renyi_entropy", alpha=2.0) == pytest.approx(-math.log2(5 / 9))
    assert value(frame, "renyi_efficiency", alpha=2.0) == pytest.approx(-math.log2(5 / 9) / 8)
    # alpha -> 1 approaches Shannon; alpha = 0 is log2 of the support size
    counts = [5, 3, 1, 1]
    assert M.renyi_entropy(counts, 1.000001) == pytest.approx(M.shannon_entropy(counts), abs=1e-5)
    assert M.renyi_entropy(counts, 0) == pytest.approx(2.0)
    assert M.renyi_entropy(counts, 1) == M.shannon_entropy(counts)


def test_conditional_entropy_by_hand():
    frame = M.conditional_entropy(BYTES, "abab", orders=(0, 1, 2))
    assert value(frame, "conditional_entropy", order=0) == pytest.approx(1.0)
    assert value(frame, "conditional_entropy", order=1) == pytest.approx(0.0)  # b always follows a, a b
    # "aab" + "abb": bigrams aa, ab, ab, bb; contexts a (3 times: -> a, b, b), b (once: -> b)
    # H(X|prev) = 3/4 H(1/3, 2/3) + 1/4 * 0
    got = value(M.conditional_entropy(BYTES, ["aab", "abb"], orders=(1,)), "conditional_entropy", order=1)
    assert got == pytest.approx(0.75 * (math.log2(3) - 2 / 3))
    # n-grams do not cross texts: "ab" and "ba" separately have one bigram each, each context seen once
    assert M.conditional_entropy_of([[1, 2], [2, 1]], 1) == pytest.approx(0.0)
    assert math.isnan(M.conditional_entropy_of([[1, 2]], 3))


def test_conditional_entropy_matches_numpy_on_random_sequences():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 4, size=50).tolist() for _ in range(5)]
    joint = {}
    for s in seqs:
        for a, b in itertools.pairwise(s):
            joint[(a, b)] = joint.get((a, b), 0) + 1
    n = sum(joint.values())
    ctx = {}
    for (a, _), c in joint.items():
        ctx[a] = ctx.get(a, 0) + c
    expected = -sum(c / n * math.log2(c / ctx[a]) for (a, _), c in joint.items())
    assert M.conditional_entropy_of(seqs, 1) == pytest.approx(expected)


def test_token_premium_by_hand():
    aligned = {"en": ["ab", "abcd"], "xx": ["abcd", "abcdefgh"]}
    frame = M.token_premium(BYTES, aligned, reference="en")
    assert value(frame, "premium", language="xx") == pytest.approx(12 / 6)
    assert value(frame, "mean_segment_premium", language="xx") == pytest.approx((2 + 2) / 2)
    assert value(frame, "premium", language="en") == 1.0
    assert value(frame, "tokens", language="xx") == 12
    with pytest.raises(ValueError, match="different numbers of segments"):
        M.token_premium(BYTES, {"en": ["a", "b"], "xx": ["a"]}, reference="en")
    with pytest.raises(ValueError, match="reference='eng' is not among"):
        M.token_premium(BYTES, aligned)


@pytest.mark.slow
def test_udhr_premium_real():
    aligned = M.udhr_aligned(["eng", "fra", "hin"])
    assert len({len(v) for v in aligned.values()}) == 1 and len(aligned["eng"]) == 31
    assert aligned["eng"][1].startswith("Article 1")
    frame = M.token_premium(BYTES, aligned)
    eng = sum(len(s.encode()) for s in aligned["eng"])
    hin = sum(len(s.encode()) for s in aligned["hin"])
    assert value(frame, "premium", language="hin") == pytest.approx(hin / eng)
    with pytest.raises(ValueError, match="not udhr version codes"):
        M.udhr_aligned(["eng", "fr"])


def test_script_coverage_by_hand():
    # vocab: 256 bytes + "ab" + "日" (3 bytes merged twice) + "a日" (mixed) + " " + "é" pieces
    han = "日".encode()
    tok = BPETokenizer([(97, 98), (han[0], han[1]), (257, han[2]), (97, 258)], special_tokens=["<s>"])
    frame = M.script_coverage(tok)
    # bytes: 0x00-0x7F are ASCII: 52 Latin letters, 76 Common; 0x80-0xFF (128) are partial UTF-8
    assert value(frame, "tokens", script="Latin") == 52 + 1  # + "ab"
    assert value(frame, "tokens", script="Common") == 76
    assert value(frame, "tokens", script="(partial UTF-8)") == 128 + 1  # + the 2-byte fragment of 日
    assert value(frame, "tokens", script="Han") == 1
    assert value(frame, "tokens", script="(mixed)") == 1
    assert value(frame, "fraction", script="Han") == pytest.approx(1 / 260)
    assert frame[frame.metric == "tokens"]["value"].sum() == 260  # the special token is not counted


def digit_tokenizer(pattern: str) -> BPETokenizer:
    """Every 1-, 2- and 3-digit string is one token; the pattern decides the groups."""
    merges, ids = [], {}
    for a in range(10):
        for b in range(10):
            ids[(a, b)] = 256 + len(merges)
            merges.append((48 + a, 48 + b))
    for a in range(10):
        for b in range(10):
            for c in range(10):
                merges.append((ids[(a, b)], 48 + c))
    return BPETokenizer(merges, pattern=pattern)


def test_digit_grouping_by_hand():
    l2r = digit_tokenizer(r"[0-9]{1,3}|[^0-9]+")  # cl100k-style: groups of 3 from the left
    frame = M.digit_grouping(l2r, "1234567 12 123456 x")
    assert value(frame, "numbers") == 2  # "12" is too short to tell
    assert value(frame, "fraction_l2r") == 1.0
    assert value(frame, "fraction_r2l") == 0.5  # 123456 is both
    r2l = digit_tokenizer(r"[0-9]{1,3}(?=(?:[0-9]{3})*(?![0-9]))|[^0-9]+")  # groups of 3 from the right
    frame = M.digit_grouping(r2l, "1234567 123456")
    assert value(frame, "fraction_r2l") == 1.0 and value(frame, "fraction_l2r") == 0.5
    tok = BPETokenizer([(49, 50), (256, 51)], pattern=r"[0-9]+|[^0-9]+")  # "12", "123" merged, others bytes
    frame = M.digit_grouping(tok, "4123 1234 1324")  # 4|123 is r2l, 123|4 is l2r, 1|3|2|4 neither
    assert value(frame, "numbers") == 3
    assert value(frame, "fraction_l2r") == value(frame, "fraction_r2l") == value(frame, "fraction_neither")
    assert value(frame, "fraction_neither") == pytest.approx(1 / 3)


def test_number_segmentation_by_hand():
    tok = digit_tokenizer(r"[0-9]{1,3}|[^0-9]+")
    frame = M.number_segmentation(tok, "n=1234567.5 ok")
    # original: runs "1234567" (3 tokens 123|456|7) and "5": one of two runs is a single token
    assert value(frame, "digit_groups", scheme="original") == 2
    assert value(frame, "single_token_groups", scheme="original") == 0.5
    # r2l: "1,234,567.5": groups 1|234|567|5, each one token, separators apart
    assert value(frame, "digit_groups", scheme="r2l") == 4
    assert value(frame, "single_token_groups", scheme="r2l") == 1.0
    assert value(frame, "crossed_groups", scheme="r2l") == 0.0
    assert value(frame, "roundtrip", scheme="triadic") == 1.0
    assert value(frame, "digit_groups", scheme="triadic") == 4
    # byte tokens never cross groups but only 1-digit groups are single tokens
    frame = M.number_segmentation(BYTES, "1234", schemes=("l2r",))
    assert value(frame, "single_token_groups", scheme="l2r") == 0.5
    # a tokenizer that merges "1,2" crosses groups
    merged = BPETokenizer([(49, 44), (256, 50)], pattern=r"\S+|\s+")
    frame = M.number_segmentation(merged, "1234", schemes=("l2r",))  # "123,4": no "1,2"
    assert value(frame, "crossed_groups", scheme="l2r") == 0.0
    frame = M.number_segmentation(merged, "1234", schemes=("r2l",))  # "1,234" -> [1,2][3][4]
    assert value(frame, "crossed_groups", scheme="r2l") == 1.0


def test_summary_and_long_format():
    frame = M.summary([BYTES, BPETokenizer([(97, 98)], name="ab")], ["abab", "ba"])
    assert list(frame.columns) == ["tokenizer", "metric", "alpha", "order", "value"]
    assert set(frame.tokenizer) == {"bytes", "ab"}
    assert value(frame[frame.tokenizer == "ab"], "tokens") == 4  # ab ab | b a
    assert value(frame[frame.tokenizer == "bytes"], "conditional_entropy", order=1) == pytest.approx(
        M.conditional_entropy_of([[97, 98, 97, 98], [98, 97]], 1))


def test_bad_input():
    with pytest.raises(ValueError, match="texts is empty"):
        M.compression(BYTES, [])
    with pytest.raises(ValueError, match="texts is empty"):
        M.entropy(BYTES, ["", ""])
    with pytest.raises(InputTypeError, match="texts must be a str or an iterable"):
        M.compression(BYTES, b"bytes")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        M.fertility(BYTES, ["ok", "\udcff"])
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        M.entropy(BYTES, "ab", alpha=-1)
    with pytest.raises(ValueError, match="orders must be"):
        M.conditional_entropy(BYTES, "ab", orders=(1, -1))
    with pytest.raises(ValueError, match="schemes must be"):
        M.number_segmentation(BYTES, "1", schemes=("ltr",))
    with pytest.raises(ValueError, match="not a known tokenizer"):
        M.compression("no-such-tokenizer", "ab")
