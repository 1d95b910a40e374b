"""The prompt-compression benchmark's own logic: building (context, target) pairs and averaging the curves."""
from __future__ import annotations

import pytest

from .loader import load_benchmark

C = load_benchmark("attribution_compression")

DOCS = [
    "One two three. Four five six seven. Eight nine ten eleven twelve.",  # 3 + 4 words, then a 5-word sentence
    "Short. Too short.",  # never reaches 6 context words with a sentence after
    "Alpha beta gamma delta epsilon zeta eta. Theta iota kappa lambda mu nu.",
]


def test_build_items_takes_whole_sentences_and_the_next_ones_first_words():
    items = C.build_items(DOCS, 2, context_words=6, target_words=3, seed=0)
    by_doc = {it["document"]: it for it in items}
    assert set(by_doc) == {0, 2}
    assert by_doc[0]["context"] == "One two three. Four five six seven." and by_doc[0]["context_words"] == 7
    assert by_doc[0]["target"] == " Eight nine ten"
    assert by_doc[2]["context"] == "Alpha beta gamma delta epsilon zeta eta." and by_doc[2]["target"] == " Theta iota kappa"
    assert items == C.build_items(DOCS, 2, context_words=6, target_words=3, seed=0)  # seeded order


def test_build_items_refuses_when_too_few_documents_qualify():
    with pytest.raises(ValueError, match="found only 2 documents"):
        C.build_items(DOCS, 3, context_words=6, target_words=3)
    with pytest.raises(ValueError, match="found only 0 documents"):
        C.build_items(DOCS, 1, context_words=6, target_words=7)  # no following sentence has 7 words


def test_per_token_change_and_summary():
    a = C.per_token_change({"top:x": [-3.0, 0.0], "random": [-6.0, 0.0]}, full=-2.0, target_tokens=2)
    assert a == {"top:x": [-0.5, 1.0], "random": [-2.0, 1.0]}
    b = {"top:x": [0.5, 1.0], "random": [0.0, 1.0], "bottom:x": [0.0, 0.0]}
    s = C.summarize([a, b])
    assert set(s) == {"top:x", "random"}  # a curve missing from a prompt is left out
    assert s["top:x"]["curve"] == [0.0, 1.0] and s["top:x"]["mean"] == 0.5
    assert s["random"]["curve"] == [-1.0, 1.0] and s["random"]["mean"] == 0.0
