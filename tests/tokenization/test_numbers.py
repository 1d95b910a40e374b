"""Number transforms (digit grouping both ways, triadic suffixes): hand examples, exact inverses on random
text, errors; script detection of characters and tokens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tokenization.numbers import (
    TriadicMarkers,
    group_digits,
    split_run,
    triadic_decode,
    triadic_encode,
    ungroup_digits,
)
from workbench.tokenization.scripts import char_script, token_script

M0, M1, M2 = "\ue000", "\ue001", "\ue002"
F = "\ue100"

numberish = st.text(alphabet=st.sampled_from(list("0123456789.,- ab\n")) | st.characters(), max_size=60)


def test_split_run():
    assert split_run("1234567", "l2r") == ["123", "456", "7"]
    assert split_run("1234567", "r2l") == ["1", "234", "567"]
    assert split_run("123456", "r2l") == split_run("123456", "l2r") == ["123", "456"]
    assert split_run("12345", "r2l", size=2) == ["1", "23", "45"]


def test_group_digits_by_hand():
    assert group_digits("pay 1234567 now", "r2l") == "pay 1,234,567 now"
    assert group_digits("pay 1234567 now", "l2r") == "pay 123,456,7 now"
    assert group_digits("x=12, y=123", "r2l") == "x=12, y=123"
    assert group_digits("1234", "r2l", separator=" ") == "1 234"
    assert ungroup_digits("1,234,567 and a, b") == "1234567 and a, b"


def test_triadic_by_hand():
    assert triadic_encode("1234567.891") == "1" + M2 + "234" + M1 + "567" + M0 + "891" + F
    assert triadic_encode("3.14159") == "3" + M0 + "141" + F + "59" + F + F
    assert triadic_encode("007 x") == "007" + M0 + " x"
    assert triadic_encode("v1.2.3") == "v1" + M0 + "2" + F + ".3" + M0
    too_long = "1" * 22  # 8 triads > 7 integer markers: unchanged
    assert triadic_encode(too_long) == too_long
    assert triadic_encode("0." + "1" * 16) == "0." + "1" * 16  # 6 fractional triads > 5
    markers = TriadicMarkers(integer=("<u>", "<k>", "<m>"), fraction="<f>", max_fraction_triads=2)
    assert triadic_encode("1234.5", markers) == "1<k>234<u>5<f>"
    assert triadic_decode("1<k>234<u>5<f>", markers) == "1234.5"


@settings(max_examples=200, deadline=None)
@given(text=numberish, direction=st.sampled_from(["l2r", "r2l"]))
def test_grouping_is_exactly_undone(text, direction):
    if any(f"{a},{b}" in text for a in "0123456789" for b in "0123456789"):
        with pytest.raises(ValueError, match="already has separator"):
            group_digits(text, direction)
        return
    assert ungroup_digits(group_digits(text, direction)) == text


@settings(max_examples=200, deadline=None)
@given(text=numberish)
def test_triadic_is_exactly_undone(text):
    if any(m in text for m in TriadicMarkers().all()):
        with pytest.raises(ValueError, match="already contains the triadic marker"):
            triadic_encode(text)
        return
    encoded = triadic_encode(text)
    assert triadic_decode(encoded) == text


def test_errors():
    with pytest.raises(ValueError, match="direction must be 'l2r' or 'r2l'"):
        group_digits("1", "ltr")
    with pytest.raises(ValueError, match="separator must be a non-empty string without digits"):
        group_digits("1", "r2l", separator="0")
    with pytest.raises(ValueError, match="malformed triadic number"):
        triadic_decode("1" + M0 + "2" + M1)
    with pytest.raises(ValueError, match="must not overlap"):
        TriadicMarkers(integer=("<", "<k"), fraction="|")
    with pytest.raises(ValueError, match="distinct"):
        TriadicMarkers(integer=("a", "a"), fraction="f")


def test_scripts():
    assert [char_script(c) for c in "aΩж日あアאب1 \u0301ก가"] == [
        "Latin", "Greek", "Cyrillic", "Han", "Hiragana", "Katakana", "Hebrew", "Arabic", "Common", "Common",
        "Inherited", "Thai", "Hangul"]
    assert token_script(b" hello") == "Latin"  # the space is Common, ignored
    assert token_script("日本".encode()) == "Han"
    assert token_script("a日".encode()) == "(mixed)"
    assert token_script("日".encode()[:2]) == "(partial UTF-8)"
    assert token_script(b"  ") == "Common"
    assert token_script("\u0301".encode()) == "Inherited"
