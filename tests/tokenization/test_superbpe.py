"""SuperBPE: stage 2 equals a brute-force trainer that recounts every pair each step; t == vocab_size is plain
BPE; superwords respect sentence boundaries and the word bound; round trips; bad input."""

from __future__ import annotations

from collections import Counter

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tokenization import InputTypeError
from workbench.tokenization.bpe_train import train_bpe
from workbench.tokenization.pretokenize import CL100K_PATTERN
from workbench.tokenization.superbpe import train_superbpe

from .conftest import SAMPLES
from .test_bpe_train import merge_pair, naive_merges

CORPUS = [
    "the cat sat on the mat. the dog sat on the log! is it on the mat? it is on the mat.\n",
    "in the end the cat and the dog sat on the mat. of the cat, of the dog; by the way it is.\n",
    "by the way, the cat is on the mat. by the way the dog is on the log.\n\nthe end.\n",
    "1234 5678 12345. naïve café — 東京 東京! def f(x):\n    return x + 1\n",
] * 3


def reference_superbpe(texts, vocab_size, transition, max_words, min_frequency=2):
    """Brute force, written independently of the trainer: stage-1 pre-tokens by findall, chunks by the
    documented rule, stage 1 = naive BPE over pre-tokens, stage 2 = naive BPE over chunks starting from the
    stage-1 split, recounting every pair at every step and skipping pairs whose bytes hold more than max_words
    words (naive_merges from test_bpe_train for both)."""
    chunks = Counter()
    for text in texts:
        pieces = regex.findall(CL100K_PATTERN, text)
        cur = []
        for p in pieces:
            if cur and ("\n" in cur[-1] or "\r" in cur[-1] or "\n" in p or "\r" in p
                        or (cur[-1][-1] in ".!?" and p[0].isspace())):
                chunks[tuple(cur)] += 1
                cur = []
            cur.append(p)
        if cur:
            chunks[tuple(cur)] += 1

    base = {bytes([b]) for b in range(256)}
    words = Counter()
    for chunk, n in chunks.items():
        for p in chunk:
            words[tuple(bytes([b]) for b in p.encode())] += n
    stage1, _, _, _ = naive_merges(words, set(base), transition, min_frequency)

    def apply(piece):
        toks = tuple(bytes([b]) for b in piece.encode())
        for pair in stage1:
            toks = merge_pair(toks, pair)
        return toks

    seqs = Counter()
    for chunk, n in chunks.items():
        seqs[tuple(t for p in chunk for t in apply(p))] += n
    # stage 2 continues the same vocabulary: count sizes from the stage-1 vocabulary
    vocab1 = base | {a + b for a, b in stage1}
    stage2, _, _, final = naive_merges(seqs, vocab1, vocab_size, min_frequency,
                                       allowed=lambda p: len((p[0] + p[1]).split()) <= max_words)
    return stage1, stage2, sum(len(w) * f for w, f in final.items())


def byte_pairs(tok, merges):
    return [(tok.token_bytes(a), tok.token_bytes(b)) for a, b in merges]


@pytest.mark.parametrize("vocab_size,transition,max_words", [(330, 290, 4), (360, 300, 2), (340, 256, 3)])
def test_stage2_equals_brute_force(vocab_size, transition, max_words):
    result = train_superbpe(CORPUS, vocab_size, transition, max_words=max_words, progress=False)
    stage1, stage2, total = reference_superbpe(CORPUS, vocab_size, transition, max_words)
    tok = result.tokenizer
    assert byte_pairs(tok, result.stage1_merges) == stage1
    assert byte_pairs(tok, result.stage2_merges) == stage2
    assert len(stage2) > 10
    # encoding the training text by rank reproduces the trainer's final segmentation
    assert sum(len(tok.encode(t)) for t in CORPUS) == total


def test_transition_equal_to_vocab_is_plain_bpe():
    for vocab_size in (300, 380):
        sb = train_superbpe(CORPUS, vocab_size, vocab_size, progress=False)
        bpe = train_bpe(CORPUS, vocab_size, progress=False)
        assert sb.stage2_merges == []
        assert sb.stage1_merges == bpe.merges
        assert sb.tokenizer.vocab_size == bpe.tokenizer.vocab_size
        for text in SAMPLES + CORPUS + ["the cat. The dog!  x?\n\n1234567"]:
            assert sb.tokenizer.encode(text) == bpe.tokenizer.encode(text)


def test_superwords_respect_sentence_boundaries_and_word_bound():
    for max_words in (2, 4):
        result = train_superbpe(CORPUS * 4, 420, 280, max_words=max_words, progress=False)
        tok = result.tokenizer
        created = {tok.token_bytes(i) for i in range(tok.stage1.vocab_size, tok.vocab_size)}
        assert any(len(p.split()) >= 2 for p in created), "no superword formed"
        assert max(len(p.split()) for p in created) == max_words
        for i in range(tok.vocab_size):
            piece = tok.token_bytes(i)
            assert len(piece.split()) <= max_words
        for piece in created:
            if b"\n" in piece or b"\r" in piece:  # only inside one stage-1 pre-token such as ".\n\n"
                assert len(regex.findall(CL100K_PATTERN, piece.decode())) == 1, piece
            assert not regex.search(rb"[.!?][ \t]", piece), piece
        # and in actual encodings
        for text in CORPUS:
            for i in tok.encode(text):
                piece = tok.token_bytes(i)
                assert not regex.search(rb"[.!?] ", piece), piece
                assert b"\n" not in piece or len(regex.findall(CL100K_PATTERN, piece.decode())) == 1, piece


def test_superword_example():
    result = train_superbpe(CORPUS * 4, 420, 280, max_words=4, progress=False)
    tok = result.tokenizer
    pieces = [tok.token_bytes(i) for i in tok.encode("by the way the cat sat on the mat.")]
    assert any(len(p.split()) >= 2 for p in pieces), pieces
    plain = train_bpe(CORPUS * 4, 420, progress=False).tokenizer
    assert len(tok.encode(" ".join(CORPUS))) < len(plain.encode(" ".join(CORPUS)))


_TOK = None


def _tok():
    global _TOK
    if _TOK is None:
        _TOK = train_superbpe(CORPUS + SAMPLES, 400, 300, special_tokens=["<|end|>"], progress=False).tokenizer
    return _TOK


@pytest.mark.parametrize("text", SAMPLES + CORPUS + ["a.b. c! d?e\r\n<|end|>the cat. <|end|>"])
def test_round_trip(text):
    tok = _tok()
    assert tok.decode(tok.encode(text)) == text
    ids, _ = tok.encode_with_offsets(text)
    assert ids == tok.encode(text)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("the cat.!? \n\tx1é東😀")), max_size=60))
def test_round_trip_property(text):
    tok = _tok()
    assert tok.decode(tok.encode(text)) == text


def test_bad_input():
    with pytest.raises(ValueError, match="transition=255"):
        train_superbpe(CORPUS, 300, 255, progress=False)
    with pytest.raises(ValueError, match="transition=256 .*256 \\+ 1 = 257"):
        train_superbpe(CORPUS, 300, 256, special_tokens=["<s>"], progress=False)
    with pytest.raises(ValueError, match="transition=301 .*vocab_size=300"):
        train_superbpe(CORPUS, 300, 301, progress=False)
    with pytest.raises(ValueError, match="max_words"):
        train_superbpe(CORPUS, 300, 280, max_words=0, progress=False)
    with pytest.raises(ValueError, match="vocab_size=200"):
        train_superbpe(CORPUS, 200, 200, progress=False)
    with pytest.raises(InputTypeError, match="transition"):
        train_superbpe(CORPUS, 300, 280.0, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train_superbpe([], 300, 280, progress=False)


def test_sweep_equals_separate_runs():
    from workbench.tokenization.superbpe import train_superbpe_sweep

    transitions = [256, 300, 350, 400]
    sweep = train_superbpe_sweep(CORPUS, 400, transitions, special_tokens=(), progress=False)
    for t, result in zip(transitions, sweep, strict=True):
        alone = train_superbpe(CORPUS, 400, t, progress=False)
        assert result.stage1_merges == alone.stage1_merges
        assert result.stage2_merges == alone.stage2_merges
    with pytest.raises(ValueError, match="transition=500"):
        train_superbpe_sweep(CORPUS, 400, [300, 500], progress=False)
