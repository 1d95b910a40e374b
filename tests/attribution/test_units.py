"""Granularity: tokens grouped into words, sentences and user byte spans; token columns summed into units."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.attribution import attribute
from workbench.attribution.units import (
    aggregation_matrix,
    build_units,
    check_granularity,
)
from workbench.tokenization import ByteTokenizer

TOK = ByteTokenizer()


def units(text, granularity):
    ids, offsets = TOK.encode_with_offsets(text)
    return build_units(check_granularity(granularity), ids, offsets, text.encode("utf-8"))


def test_words_take_their_leading_whitespace():
    got = units("Hello,  world!\nNew", "word")
    assert [u.text for u in got] == ["Hello,", "  world!", "\nNew"]
    assert [(u.start, u.end) for u in got] == [(0, 6), (6, 14), (14, 18)]
    assert got[1].token_indices == list(range(6, 14)) and got[0].kind == "word"


def test_trailing_whitespace_joins_the_last_word():
    assert [u.text for u in units("a b ", "word")] == ["a", " b "]


def test_multibyte_characters_keep_whole_words():
    got = units("héllo wörld", "word")
    assert [u.text for u in got] == ["héllo", " wörld"]
    assert got[0].end == len("héllo".encode()) and len(got[0].token_ids) == 6


def test_sentences():
    got = units('One. "Two!" Three?\nFour and five', "sentence")
    assert [u.text for u in got] == ["One.", ' "Two!"', " Three?", "\nFour and five"]
    assert all(u.kind == "sentence" for u in got)


def test_byte_spans_with_gaps():
    got = units("Hello big world", [(6, 9), (10, 15)])
    assert [(u.text, u.kind) for u in got] == [("Hello ", "gap"), ("big", "span"), (" ", "gap"), ("world", "span")]
    assert sum(len(u.token_indices) for u in got) == 15


@pytest.mark.parametrize("bad,match", [
    ("chars", r"granularity must be one of \['token', 'word', 'sentence'\]"),
    ([], "non-empty list"),
    ([(0, 3), (2, 5)], "must not overlap"),
    ([(3, 3)], "0 <= start < end"),
    ([(0, 2.5)], "pair of int byte offsets"),
    (5, "granularity must be one of"),
])
def test_bad_granularity(bad, match):
    with pytest.raises(ValueError, match=match):
        check_granularity(bad)


def test_span_past_the_end():
    with pytest.raises(ValueError, match="ends after the prompt, which has 5 bytes"):
        units("Hello", [(0, 6)])


def test_aggregation_matrix_sums_columns():
    got = units("ab cd", "word")
    m = aggregation_matrix(got, 5)
    np.testing.assert_array_equal(m, [[1, 0], [1, 0], [0, 1], [0, 1], [0, 1]])


@pytest.mark.parametrize("method", ["saliency", "attention", "integrated_gradients"])
def test_token_methods_sum_into_units(llama, method):
    options = {"steps": 4} if method == "integrated_gradients" else {}
    token = attribute(llama, "Hi there. Bye", " x", method=method, progress=False, **options)
    word = attribute(llama, "Hi there. Bye", " x", method=method, granularity="word", progress=False, **options)
    sentence = attribute(llama, "Hi there. Bye", " x", method=method, granularity="sentence", progress=False,
                         **options)
    spans = attribute(llama, "Hi there. Bye", " x", method=method, granularity=[(3, 8)], progress=False, **options)
    t = token.matrix
    np.testing.assert_allclose(word.matrix, np.stack([t[:, :2].sum(1), t[:, 2:9].sum(1), t[:, 9:].sum(1)], 1))
    np.testing.assert_allclose(sentence.matrix, np.stack([t[:, :9].sum(1), t[:, 9:].sum(1)], 1))
    assert [u.text for u in spans.sources] == ["Hi ", "there", ". Bye"]
    np.testing.assert_allclose(spans.matrix, np.stack([t[:, :3].sum(1), t[:, 3:8].sum(1), t[:, 8:].sum(1)], 1))
