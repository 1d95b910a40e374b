"""StochasTok: split table against brute force over all token pairs, decoding unchanged (property test),
seeding, expected number of expansions, datasets.map."""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tokenization import ByteTokenizer, HFTokenizer
from workbench.tokenization.bpe_train import train_bpe
from workbench.tokenization.stochastok import StochasTok, build_split_table, expand_ids

from .conftest import SAMPLES, training_text


@functools.lru_cache(maxsize=1)
def bpe():
    return train_bpe([training_text()], 600, special_tokens=["<|endoftext|>"], progress=False).tokenizer


def brute_force_splits(tok):
    """Every ordered pair of ordinary tokens whose bytes concatenate to a token's bytes (vocab^2 pairs)."""
    ordinary = [i for i in range(tok.vocab_size) if i not in tok.special_ids]
    pieces = {i: tok.token_bytes(i) for i in ordinary}
    first = {}
    for i in ordinary:
        first.setdefault(pieces[i], i)
    expected = {t: set() for t in range(tok.vocab_size)}
    for a in ordinary:
        if first[pieces[a]] != a:
            continue
        for b in ordinary:
            if first[pieces[b]] != b:
                continue
            t = first.get(pieces[a] + pieces[b])
            if t is not None:
                for same in ordinary:
                    if pieces[same] == pieces[a] + pieces[b]:
                        expected[same].add((a, b))
    return expected


def test_split_table_equals_brute_force():
    tok = bpe()
    table = build_split_table(tok)
    expected = brute_force_splits(tok)
    for t in range(tok.vocab_size):
        assert set(table.splits(t)) == expected[t], t
        assert len(table.splits(t)) == len(set(table.splits(t)))
    assert table.splits(tok.vocab_size - 1) == []  # the special token is never split
    assert table.splits(ord("a")) == []  # single bytes cannot be split
    assert table.num_splittable == tok.vocab_size - 256 - 1  # every merged token has at least its merge


def test_hand_example():
    tok = ByteTokenizer(specials=())
    assert build_split_table(tok).num_splittable == 0
    from workbench.tokenization.bpe import BPETokenizer

    # tokens: "ab" (256), "abc" (257) = ab+c, "bc" (258): "abc" also splits as a+bc
    tok = BPETokenizer([(97, 98), (256, 99), (98, 99)], pattern=r"\S+")
    table = build_split_table(tok)
    assert sorted(table.splits(257)) == [(97, 258), (256, 99)]
    assert table.splits(256) == [(97, 98)] and table.splits(258) == [(98, 99)]
    st_ = StochasTok(tok, p=1.0)
    ids = st_.encode("abc", seed=0)  # one step on one token: always split into one of its two pairs
    assert ids in ([97, 258], [256, 99])
    seen = {tuple(st_.encode("abc", seed=s)) for s in range(40)}
    assert seen == {(97, 258), (256, 99)}


@settings(max_examples=80, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120),
       p=st.sampled_from([0.0, 0.3, 1.0, 3.0]), seed=st.integers(0, 2**32 - 1))
def test_decoding_unchanged(text, p, seed):
    tok = bpe()
    sto = StochasTok(tok, p=p)
    ids = tok.encode(text)
    out = sto.expand(ids, seed=seed)
    assert tok.decode(out) == text
    assert b"".join(tok.token_bytes(i) for i in out) == text.encode()
    assert len(out) >= len(ids)


def test_hf_and_byte_tokenizers(byte_bpe):
    tok = HFTokenizer(byte_bpe)
    sto = StochasTok(tok, p=2.0)
    for text in SAMPLES:
        out = sto.encode(text, seed=1)
        assert tok.decode(out) == text
    text = "Crème brûlée, naïve façade"
    assert len(sto.encode(text, seed=1)) > len(tok.encode(text))


def test_seeding_and_expected_steps():
    tok = bpe()
    text = training_text()[:3000]
    ids = tok.encode(text)
    sto = StochasTok(tok, p=0.25, seed=7)
    assert sto.expand(ids, seed=3) == sto.expand(ids, seed=3)
    assert sto.expand(ids, seed=3) != sto.expand(ids, seed=4)
    assert StochasTok(tok, p=0.0).expand(ids, seed=3) == ids
    # every step on a splittable token adds exactly one token: with a table where every token splits,
    # the length grows by exactly the number of steps, floor(p n) or floor(p n) + 1
    long_ids = [tok.token_id(b" the")] * 10  # " the" is a merged token (splittable); its halves may not be
    lengths = {len(expand_ids(long_ids, sto.table, 0.05, np.random.default_rng(s))) for s in range(200)}
    assert lengths == {10, 11}  # 0.5 expected steps: 0 or 1, both occur
    grown = np.mean([len(expand_ids(long_ids, sto.table, 0.05, np.random.default_rng(s))) - 10
                     for s in range(2000)])
    assert abs(grown - 0.5) < 0.05


def test_datasets_map_is_deterministic_across_batching(tmp_path):
    import datasets

    tok = bpe()
    sto = StochasTok(tok, p=0.5, seed=11)
    texts = [t for t in training_text().split("\n") if t][:40]
    ds = datasets.Dataset.from_dict({"input_ids": [tok.encode(t) for t in texts]})
    fn = sto.map_function()
    pickle.loads(pickle.dumps(fn))
    a = ds.map(fn, batched=True, with_indices=True, batch_size=7)
    b = ds.map(fn, batched=True, with_indices=True, batch_size=40)
    c = ds.map(fn, with_indices=True)
    assert a["input_ids"] == b["input_ids"] == c["input_ids"]
    assert a["input_ids"] != ds["input_ids"]
    assert [tok.decode(x) for x in a["input_ids"]] == texts
    d = ds.map(sto.map_function(output_column="stochastok_ids"), batched=True, with_indices=True)
    assert d["stochastok_ids"] == a["input_ids"] and d["input_ids"] == ds["input_ids"]


def test_bad_input():
    tok = bpe()
    with pytest.raises(ValueError, match="p must be a finite number >= 0"):
        StochasTok(tok, p=-0.1)
    with pytest.raises(ValueError, match="p must be"):
        StochasTok(tok, p=float("nan"))
    with pytest.raises(ValueError, match="out of range"):
        StochasTok(tok).expand([tok.vocab_size])
    with pytest.raises(ValueError, match="column 'ids' is not in the batch"):
        StochasTok(tok).map_function(column="ids")({"input_ids": [[1]]}, [0])
