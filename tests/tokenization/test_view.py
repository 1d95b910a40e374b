"""The side-by-side tokenizer view: one strip per tokenizer covering the text exactly, the metric table, errors."""
from __future__ import annotations

import pytest

from workbench.tokenization.bytes import ByteTokenizer
from workbench.tokenization.view import TokenizerComparison, compare_tokenizers

TEXT = "Tokenizers split wörds differently: 12345!"


@pytest.fixture(scope="module")
def view() -> TokenizerComparison:
    return compare_tokenizers(TEXT, {"bytes": ByteTokenizer(), "gpt2": "gpt2"})


def test_each_strip_covers_the_text_with_the_tokenizers_own_ids(view):
    assert list(view.strips) == ["bytes", "gpt2"]
    data = TEXT.encode("utf-8")
    for label, strip in view.strips.items():
        assert b"".join(t.bytes for t in strip.tokens) == data
        assert [t.id for t in strip.tokens] == view.tokenizers[label].encode(TEXT)
        assert strip.title == f"{label}: {len(strip.tokens)} tokens"
    assert [t.id for t in view.strips["bytes"].tokens] == list(data)  # the byte tokenizer: one token per byte


def test_the_table_has_a_row_per_tokenizer_with_counts_from_the_encoders(view):
    rows = {r["tokenizer"]: r for r in view.table.records()}
    n_bytes = len(TEXT.encode("utf-8"))
    for label, tokenizer in view.tokenizers.items():
        n = len(tokenizer.encode(TEXT))
        assert rows[label]["tokens"] == n
        assert rows[label]["bytes_per_token"] == pytest.approx(n_bytes / n)
        assert rows[label]["chars_per_token"] == pytest.approx(len(TEXT) / n)


def test_static_html_is_self_contained_and_names_every_tokenizer(view):
    html = view.to_html()
    assert "http" not in html and "<script" not in html
    assert "bytes: " in html and "gpt2: " in html
    lines = view.to_text().splitlines()
    assert lines[0].startswith("bytes: T | o | k") and lines[1].startswith("gpt2: ")


@pytest.mark.parametrize("text, tokenizers, message", [
    ("", ["gpt2"], "text: must be a non-empty str"),
    (b"bytes", ["gpt2"], "text: must be a non-empty str"),
    (TEXT, [], "tokenizers: give at least one tokenizer"),
    (TEXT, ["gpt2", "gpt2"], "the label 'gpt2' is given twice"),
])
def test_bad_input_is_refused(text, tokenizers, message):
    with pytest.raises(ValueError, match=message):
        compare_tokenizers(text, tokenizers)


def test_unknown_tokenizer_names_the_known_ones():
    with pytest.raises(ValueError, match="no-such-tokenizer"):
        compare_tokenizers(TEXT, ["no-such-tokenizer"])
