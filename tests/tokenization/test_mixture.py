"""Data mixture inference: exact recovery when the samples are the training parts; recovery within 5 points on
tokenizers trained here on known English / Spanish / code mixtures with held-out samples; bad input."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from workbench.tokenization.bpe_train import train_bpe
from workbench.tokenization.mixture import infer_mixture, merges_of, pair_count_rows

TINY = {
    "a": ["the cat sat on the mat and the hat " * 20],
    "b": ["def f(x):\n    return x + 1\n" * 20],
    "c": ["el gato y la casa de la mesa " * 20],
}


def segments(texts, size=2000):
    out = [t[i : i + size] for t in texts for i in range(0, len(t), size)]
    random.Random(0).shuffle(out)
    return out


def take(docs, start, nbytes):
    out, n = [], 0
    for d in docs[start:]:
        if n >= nbytes:
            break
        out.append(d)
        n += len(d.encode())
    return out


@pytest.fixture(scope="module")
def categories():
    from workbench.assets import load_corpus

    prose = list(load_corpus("english-prose")["text"])
    bible = load_corpus("bible-parallel")
    chapters = {"web": defaultdict(list), "rv1909": defaultdict(list)}
    for v, b, c, t in zip(bible["version"], bible["book"], bible["chapter"], bible["text"], strict=True):
        if v in chapters:
            chapters[v][(b, c)].append(t)
    english = prose + [" ".join(v) for v in chapters["web"].values()]
    spanish = [" ".join(v) for v in chapters["rv1909"].values()]
    code = list(load_corpus("cpython-stdlib")["text"])
    return {"english": segments(english), "spanish": segments(spanish), "code": segments(code)}


def test_exact_when_samples_are_the_training_parts():
    parts = {name: texts for name, texts in TINY.items()}
    weights = {"a": 3, "b": 1, "c": 2}
    train = [t for name, texts in parts.items() for t in texts * weights[name]]
    tok = train_bpe(train, 300, progress=False).tokenizer
    merges, pattern = merges_of(tok)
    sizes = np.array([len(t[0].encode()) * weights[n] for n, t in parts.items()], dtype=float)
    truth = sizes / sizes.sum()
    # replayed counts: the true proportions make every merge the most frequent pair (zero slack)
    _, _steps, rows, _merged, used = pair_count_rows(merges, parts, pattern=pattern, top_k=1000)
    assert used == len(merges) and len(rows) > 0
    assert (rows @ truth <= 1e-12).all()
    assert not (rows @ np.array([0.0, 1.0, 0.0]) <= 1e-12).all()
    result = infer_mixture(merges, parts, pattern=pattern, progress=False)
    assert result.objective == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("ratio", [(0.6, 0.2, 0.2), (0.3, 0.3, 0.4)])
def test_recovers_known_mixture_within_5_points(categories, ratio):
    train = []
    for (_, docs), r in zip(categories.items(), ratio, strict=True):
        train += take(docs, 0, r * 300_000)
    tok = train_bpe(train, 600, progress=False).tokenizer
    merges, pattern = merges_of(tok)
    samples = {name: take(docs, len(docs) // 2, 100_000) for name, docs in categories.items()}
    result = infer_mixture(merges, samples, pattern=pattern, top_k=30, progress=False)
    for (name, share), truth in zip(result.proportions.items(), ratio, strict=True):
        assert abs(share - truth) <= 0.05, (name, share, truth)


def test_bad_input():
    tok = train_bpe(TINY["a"] + TINY["b"], 280, progress=False).tokenizer
    merges, pattern = merges_of(tok)
    with pytest.raises(ValueError, match="at least 2 categories"):
        infer_mixture(merges, {"a": TINY["a"]}, pattern=pattern, progress=False)
    with pytest.raises(ValueError, match=r"samples\['b'\] is empty"):
        infer_mixture(merges, {"a": TINY["a"], "b": []}, pattern=pattern, progress=False)
    with pytest.raises(ValueError, match=r"samples\['b'\] is empty"):
        infer_mixture(merges, {"a": TINY["a"], "b": [""]}, pattern=pattern, progress=False)
    never = [(b"\xf0", b"\x9f"), (b"\xf0\x9f", b"\x98")]
    with pytest.raises(ValueError, match="none of the merges ever occurs in the samples"):
        infer_mixture(never, {"a": TINY["a"], "b": TINY["b"]}, pattern=pattern, progress=False)
    with pytest.raises(ValueError, match="uses a token no earlier merge created"):
        infer_mixture([(b"ab", b"c")], {"a": TINY["a"], "b": TINY["b"]}, pattern=pattern, progress=False)
    with pytest.raises(ValueError, match="top_k"):
        infer_mixture(merges, TINY, pattern=pattern, top_k=0, progress=False)
