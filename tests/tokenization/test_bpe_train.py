"""BPE trainer: equal to a brute-force trainer that recounts every pair at every merge; tie-breaking by hand;
pair-count dumps; bad input."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tokenization import InputTypeError
from workbench.tokenization.bpe_train import train_bpe, train_bpe_from_bytes
from workbench.tokenization.pair_counts import PairCountLog
from workbench.tokenization.pretokenize import CL100K_PATTERN, GPT2_PATTERN

from .conftest import training_text

TINY = [
    "the cat sat on the mat. the cat ate the rat!",
    "Théâtre: naïve café — 東京 東京 東京; emoji 😀😀 😀",
    "def f(x):\n    return x + 1\n\n\n    return  x  ",
    "1234567 + 890 = 1235457; aaaa aaa aa a",
]


def merge_pair(word, pair):
    """`word` (a tuple of byte strings) with every non-overlapping `pair`, left to right, joined into one."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def naive_merges(words, vocab, target, min_frequency, allowed=lambda pair: True):
    """Brute force on a table word (tuple of byte strings) -> frequency: recount every pair in every word at
    every step, keep the `allowed` ones, pick the max count, then the smallest (left bytes, right bytes);
    merge everywhere left to right; until the set `vocab` (extended in place) has `target` entries. Returns
    merges as byte pairs, their counts, the pair-count table before each merge, and the final words."""
    merges, counts_each, tables = [], [], []
    while len(vocab) < target:
        pairs = Counter()
        for word, f in words.items():
            for pair in pairwise(word):
                pairs[pair] += f
        pairs = {p: n for p, n in pairs.items() if allowed(p)}
        tables.append(pairs)
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p[0], p[1]))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        counts_each.append(pairs[best])
        vocab.add(best[0] + best[1])
        new_words = Counter()
        for word, f in words.items():
            new_words[merge_pair(word, best)] += f
        words = new_words
    return merges, counts_each, tables, words


def naive_bpe(texts, vocab_size, pattern, specials=(), min_frequency=2):
    """Brute force BPE on `texts` (naive_merges from bytes). Returns merges as byte pairs, their counts, and
    the full pair-count table (as byte pairs) before each merge."""
    split = regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True))) if specials \
        else None
    words = Counter()
    for text in texts:
        parts = split.split(text) if split else [text]
        for part in parts:
            for piece in regex.findall(pattern, part):
                words[tuple(bytes([b]) for b in piece.encode("utf-8"))] += 1
    vocab = {bytes([b]) for b in range(256)}
    merges, counts_each, tables, _ = naive_merges(words, vocab, vocab_size - len(specials), min_frequency)
    return merges, counts_each, tables


def byte_merges(result):
    tok = result.tokenizer
    return [(tok.token_bytes(a), tok.token_bytes(b)) for a, b in result.merges]


@pytest.mark.parametrize("pattern", [CL100K_PATTERN, GPT2_PATTERN], ids=["cl100k", "gpt2"])
@pytest.mark.parametrize("vocab_size,min_frequency", [(300, 2), (420, 1)])
def test_incremental_trainer_equals_brute_force(pattern, vocab_size, min_frequency):
    result = train_bpe(TINY, vocab_size, pattern=pattern, min_frequency=min_frequency, progress=False)
    merges, counts, _ = naive_bpe(TINY, vocab_size, pattern, min_frequency=min_frequency)
    assert len(merges) > 20
    assert byte_merges(result) == merges
    assert result.merge_counts == counts


def test_brute_force_on_a_larger_text_with_specials():
    text = training_text()[:6000]
    texts = [text[:3000] + "<|endoftext|>" + text[3000:], "<|pad|>x<|endoftext|>"]
    specials = ["<|endoftext|>", "<|pad|>"]
    result = train_bpe(texts, 420, special_tokens=specials, progress=False)
    merges, _, _ = naive_bpe(texts, 420, CL100K_PATTERN, specials=specials)
    assert byte_merges(result) == merges
    assert result.tokenizer.vocab_size == 420
    assert result.stopped == "vocab_size"
    assert all(b"endoftext" not in a + b for a, b in merges)


def test_tie_breaking_by_hand():
    # pre-tokens "ab" and " ac": pairs (a,b), (" ",a), (a,c) all occur once.
    # Ties go to the smallest (left bytes, right bytes): b" " < b"a", so (" ", "a") first; then among
    # ("a","b") and (" a","c"), b" a" < b"a"; then ("a","b").
    result = train_bpe(["ab ac"], 259, min_frequency=1, progress=False)
    assert byte_merges(result) == [(b" ", b"a"), (b" a", b"c"), (b"a", b"b")]
    # the higher count wins over the smaller bytes: (x,y) twice beats (a,b) once
    result = train_bpe(["ab xy xy"], 257, min_frequency=1, pattern=r"\S+", progress=False)
    assert byte_merges(result) == [(b"x", b"y")]
    # equal counts, equal left bytes: the smaller right bytes wins
    result = train_bpe(["ac ab"], 257, min_frequency=1, pattern=r"\S+", progress=False)
    assert byte_merges(result) == [(b"a", b"b")]


def test_min_frequency_stops_training():
    result = train_bpe(["abc abc xyz"], 1000, min_frequency=2, pattern=r"\S+", progress=False)
    assert byte_merges(result) == [(b"a", b"b"), (b"ab", b"c")]
    assert result.stopped == "min_frequency"
    assert result.tokenizer.vocab_size == 258
    result = train_bpe(["ab"], 1000, min_frequency=1, progress=False)
    assert result.stopped == "no_pairs"


def test_pair_count_log_replays_every_step(tmp_path):
    result = train_bpe(TINY, 330, record_pair_counts=True, progress=False)
    _, _, tables = naive_bpe(TINY, 330, CL100K_PATTERN)
    log = result.pair_counts
    tok = result.tokenizer
    assert log.steps == len(result.merges)
    for step in range(log.steps):
        got = {(tok.token_bytes(a), tok.token_bytes(b)): n for (a, b), n in log.counts_at(step).items()}
        assert got == tables[step], step
        (_, n), *_ = log.top(step, 3)
        assert log.counts_at(step)[result.merges[step]] == n == result.merge_counts[step]
    saved = PairCountLog.load(log.save(tmp_path / "pairs"))
    assert saved.counts_at(17) == log.counts_at(17)
    assert saved.to_dict() == log.to_dict()
    with pytest.raises(ValueError, match="step"):
        log.counts_at(log.steps + 1)


def test_train_from_bytes_handles_invalid_utf8():
    data = [b"\xff\xfe abc \xff\xfe abc \xc3", b"caf\xc3\xa9 \xff\xfe"]
    result = train_bpe_from_bytes(data, 270, min_frequency=2, progress=False)
    tok = result.tokenizer
    assert (b"\xff", b"\xfe") in byte_merges(result)
    for item in data + [bytes(range(256)), b"\x80" * 100]:
        assert tok.decode_bytes(tok.encode_bytes(item)) == item


def test_bad_input():
    with pytest.raises(ValueError, match="corpus is empty"):
        train_bpe([], 300, progress=False)
    with pytest.raises(ValueError, match="corpus is empty"):
        train_bpe(["", ""], 300, progress=False)
    with pytest.raises(ValueError, match="corpus is empty"):
        train_bpe(["<s><s>"], 300, special_tokens=["<s>"], progress=False)
    with pytest.raises(ValueError, match=r"vocab_size=257 .*256 \+ 2 = 258"):
        train_bpe(["abc"], 257, special_tokens=["<a>", "<b>"], progress=False)
    with pytest.raises(ValueError, match="vocab_size must be an int"):
        train_bpe(["abc"], 300.0, progress=False)
    with pytest.raises(ValueError, match="min_frequency"):
        train_bpe(["abc"], 300, min_frequency=0, progress=False)
    with pytest.raises(ValueError, match="pattern is not a valid regular expression"):
        train_bpe(["abc"], 300, pattern="(", progress=False)
    with pytest.raises(ValueError, match="special_tokens must be distinct"):
        train_bpe(["abc"], 300, special_tokens=["<s>", "<s>"], progress=False)
    with pytest.raises(ValueError, match="bos='<x>' must be one of special_tokens"):
        train_bpe(["abc"], 300, special_tokens=["<s>"], bos="<x>", progress=False)
    with pytest.raises(InputTypeError, match="train_bpe_from_bytes"):
        train_bpe([b"abc"], 300, progress=False)
    with pytest.raises(ValueError, match="not valid UTF-8"):
        train_bpe(["ok", "bad \udcff surrogate"], 300, progress=False)
    with pytest.raises(InputTypeError, match="data\\[0\\] must be bytes"):
        train_bpe_from_bytes(["text"], 300, progress=False)


def test_result_to_dict():
    result = train_bpe(TINY, 300, min_frequency=1, record_pair_counts=True, progress=False)
    d = result.to_dict()
    assert d["vocab_size"] == 300 and d["merges"] == 44 and d["stopped"] == "vocab_size"
    assert d["total_words"] == sum(len(regex.findall(CL100K_PATTERN, t)) for t in TINY)
    assert d["pair_counts"]["steps"] == 44
    assert "BPETrainResult(vocab_size=300" in repr(result)


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.text(alphabet="ab cé\n1'", max_size=30), min_size=1, max_size=4),
       extra=st.integers(1, 25))
def test_incremental_equals_brute_force_on_random_corpora(texts, extra):
    if not "".join(texts):
        return
    result = train_bpe(texts, 256 + extra, min_frequency=1, progress=False)
    merges, counts, _ = naive_bpe(texts, 256 + extra, CL100K_PATTERN, min_frequency=1)
    assert byte_merges(result) == merges
    assert result.merge_counts == counts


def test_a_merge_touches_only_the_words_containing_the_pair(monkeypatch):
    import random

    from workbench.tokenization import bpe_train

    rng = random.Random(0)
    words = {bytes(rng.choice(b"abcdefghij") for _ in range(8)): 1 for _ in range(2000)}
    words[b"zqzq"] = 1000  # (z, q) occurs 2000 times: the first merge; only this word contains it
    calls = []
    real = bpe_train._merge_word
    monkeypatch.setattr(bpe_train, "_merge_word", lambda toks, a, b, c: calls.append(1) or real(toks, a, b, c))
    merges, _, _, _ = bpe_train.train_from_word_counts(words, 257, progress=False)
    assert merges == [(ord("z"), ord("q"))]
    assert len(calls) == 1  # not one per word of the corpus


def test_a_cuda_device_counts_the_starting_pairs_with_the_pair_count_op(monkeypatch):
    # No GPU here: the op's own PyTorch reference stands in for the CUDA kernel (the kernel itself is checked
    # against that reference in tests/kernels). What this checks is the trainer's wiring: with a CUDA device
    # the starting counts come from the op, and the merges are those of the CPU trainer.
    import workbench.tokenization.bpe_train as bpe_train
    from workbench.kernels.bpe_pair_counts import bpe_pair_counts_reference
    from workbench.tokenization.pair_counts import flatten_word_table

    devices = []

    def counted_on(seqs, freqs, device=None):
        devices.append(str(device))
        return bpe_pair_counts_reference(*flatten_word_table(seqs, freqs, "cpu")).to_dict()

    monkeypatch.setattr(bpe_train, "count_pairs", counted_on)
    text = training_text()
    on_cpu = train_bpe(text, 300, progress=False)
    on_gpu = train_bpe(text, 300, progress=False, device="cuda")
    assert devices == ["cuda"]
    assert on_gpu.merges == on_cpu.merges and on_gpu.merge_counts == on_cpu.merge_counts


def test_a_bad_device_is_refused_before_training():
    with pytest.raises(ValueError, match="device must be None or a torch device.*'gpu0'"):
        train_bpe("some text", 300, device="gpu0")
