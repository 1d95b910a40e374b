"""SuperBPE: a two-stage pre-tokenization curriculum for byte-level BPE (Liu, Hayase, Hofmann, Oh, Smith,
Choi 2025, "SuperBPE: Space Travel for Language Models").

Stage 1 is ordinary BPE (bpe_train.py) on the usual whitespace-aware pre-tokens (`pattern`, default the
cl100k-style regex) up to the transition vocabulary size t. Stage 2 continues merging from stage 1's state on
coarser pre-tokens ("chunks") that no longer split at whitespace, so merges can bridge words and create
superword tokens such as " of the". The constraints implemented here:

1. Sentence boundaries. A chunk is a run of consecutive stage-1 pre-tokens; a new chunk starts (a) before
   a pre-token that starts with whitespace when the previous one ends with sentence punctuation ". ! ?"
   (so ". " / "? " / "! " end a chunk), and (b) before and after every pre-token containing a line break
   ("\\n" or "\\r"). Merges never cross chunks, so no token spans a sentence end or a newline. Special tokens
   cut chunks too, as in stage 1.
2. Bounded words per token. A stage-2 merge whose token would hold more than `max_words` words (default 4,
   the paper's bound) is never chosen; a word is a maximal run of non-whitespace bytes (ASCII whitespace),
   so " of the" has 2 and "e of th" has 3.
3. Everything else is the stage-1 rule: the most frequent pair wins, ties go to the smallest (left bytes,
   right bytes), training stops at `vocab_size` or when the best allowed pair is rarer than `min_frequency`.

Because chunks are unions of whole stage-1 pre-tokens, stage 2 starts from exactly the stage-1 (plain BPE)
encoding of every pre-token. Encoding does the same: split into stage-1 pre-tokens, BPE each with the
stage-1 merges, group into chunks, then apply the stage-2 merges to each chunk by rank (lowest rank first,
leftmost first), as stage-2 training applied them in order. Hence with t == vocab_size (no stage-2 merges)
a SuperBPE tokenizer encodes exactly as plain BPE trained on the same data. (Running ONE merge list over
chunks from bytes would differ from this in rare cases, e.g. digit groups that stage 1 splits 3+1 but a
chunk-level pass could split 2+2; we keep the stage-1 boundaries for stage-1 merges.)

The stage-2 trainer is bpe_train.py's `merge_loop` itself (pair counts updated only in the chunks a merge
touches, a lazily invalidated heap), started from the stage-1 token sequences instead of bytes, with the word
bound as its veto on pairs (`word_bound`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex

from workbench.tokenization.bpe import (
    BPETokenizer,
    ByteTableTokenizer,
    add_merges,
    merge_by_rank,
)
from workbench.tokenization.bpe_train import (
    _check_params,
    merge_loop,
    train_from_word_counts,
)
from workbench.tokenization.pretokenize import DEFAULT_PATTERN, Pretokenizer
from workbench.tokenization.protocol import InputTypeError, check_text

SENTENCE_END = ".!?"
_WORD = regex.compile(rb"[^ \t\n\r\x0b\x0c]+")
_CACHE_LIMIT = 200_000


def count_words_in(piece: bytes) -> int:
    """Words in a token's bytes: maximal runs of non-whitespace (ASCII whitespace) bytes."""
    return len(_WORD.findall(piece))


def _breaks(prev: str, nxt: str) -> bool:
    return ("\n" in prev or "\r" in prev or "\n" in nxt or "\r" in nxt
            or (prev[-1] in SENTENCE_END and nxt[0].isspace()))


def group_chunks(pieces: Sequence[str]) -> list[tuple[str, ...]]:
    """Stage-2 pre-tokens: consecutive stage-1 pre-tokens grouped into chunks (see the module docstring)."""
    chunks: list[tuple[str, ...]] = []
    current: list[str] = []
    for piece in pieces:
        if current and _breaks(current[-1], piece):
            chunks.append(tuple(current))
            current = []
        current.append(piece)
    if current:
        chunks.append(tuple(current))
    return chunks


class SuperBPETokenizer(ByteTableTokenizer):
    """Encoder for a SuperBPE merge list: stage-1 merges per pre-token, then stage-2 merges per chunk."""

    def __init__(
        self,
        stage1_merges: Sequence[tuple[int, int]],
        stage2_merges: Sequence[tuple[int, int]],
        *,
        pattern: str = DEFAULT_PATTERN,
        special_tokens: Sequence[str] = (),
        bos: str | None = None,
        eos: str | None = None,
        name: str = "superbpe",
    ) -> None:
        self.name = name
        self.pattern = pattern
        self.stage1 = BPETokenizer(stage1_merges, pattern=pattern, name=f"{name}-stage1")
        self._pre = Pretokenizer(pattern, special_tokens)
        self.special_tokens = self._pre.special_tokens
        table = [self.stage1.token_bytes(i) for i in range(self.stage1.vocab_size)]
        self.stage2_merges, self._ranks, _ = add_merges(table, stage2_merges, "stage2_merges", "stage-2 merge")
        self.stage1_merges = list(self.stage1.merges)
        self._set_vocabulary(table, bos, eos)
        self._cache: dict[tuple[str, ...], tuple[int, ...]] = {}

    def stage1_ids(self, chunk: Sequence[str]) -> list[int]:
        """Stage-1 (plain BPE) ids of a chunk's pre-tokens, concatenated."""
        out: list[int] = []
        for piece in chunk:
            out.extend(self.stage1._piece_ids(piece))
        return out

    def chunk_ids(self, chunk: tuple[str, ...]) -> tuple[int, ...]:
        ids = self._cache.get(chunk)
        if ids is None:
            ids = tuple(merge_by_rank(self.stage1_ids(chunk), self._ranks))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[chunk] = ids
        return ids

    def chunks(self, text: str) -> list[tuple[str, ...]]:
        """The stage-2 pre-tokens (chunks) of `text`, special tokens skipped."""
        out: list[tuple[str, ...]] = []
        for part, special in self._pre.split_specials(text):
            if not special:
                out.extend(group_chunks(self._pre.split(part)))
        return out

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        out = [self.bos_id] if add_special_tokens and self.bos_id is not None else []
        for part, special in self._pre.split_specials(text):
            if special:
                out.append(self._special_ids[part])
            else:
                for chunk in group_chunks(self._pre.split(part)):
                    out.extend(self.chunk_ids(chunk))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": "workbench-superbpe/1", "name": self.name, "pattern": self.pattern,
                "special_tokens": list(self.special_tokens),
                "stage1_merges": [list(m) for m in self.stage1_merges],
                "stage2_merges": [list(m) for m in self.stage2_merges]}


@dataclass
class SuperBPEResult:
    """What `train_superbpe` returns."""

    tokenizer: SuperBPETokenizer
    transition: int
    stage1_merges: list[tuple[int, int]]
    stage2_merges: list[tuple[int, int]]
    stage2_counts: list[int]
    distinct_chunks: int
    seconds: float
    stopped: str  # "vocab_size" | "min_frequency" | "no_pairs"
    max_words: int
    stage1_stopped: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"vocab_size": self.tokenizer.vocab_size, "transition": self.transition,
                "stage1_merges": len(self.stage1_merges), "stage2_merges": len(self.stage2_merges),
                "distinct_chunks": self.distinct_chunks, "seconds": self.seconds, "stopped": self.stopped,
                "stage1_stopped": self.stage1_stopped, "max_words": self.max_words}


def _check_superbpe(vocab_size: int, transition: object, max_words: object, specials: list[str]) -> None:
    smallest = 256 + len(specials)
    if isinstance(transition, bool) or not isinstance(transition, int):
        raise InputTypeError(f"transition must be an int, got {transition!r}")
    if not smallest <= transition <= vocab_size:
        raise ValueError(f"transition={transition} must be between the byte alphabet plus special tokens "
                         f"(256 + {len(specials)} = {smallest}) and vocab_size={vocab_size}")
    if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
        raise ValueError(f"max_words must be an int >= 1, got {max_words!r}")


def count_chunks(texts: Iterable[str] | str, pre: Pretokenizer) -> Counter[tuple[str, ...]]:
    """Frequency of each distinct stage-2 chunk (a tuple of stage-1 pre-tokens) in `texts`."""
    if isinstance(texts, str):
        texts = [texts]
    chunks: Counter[tuple[str, ...]] = Counter()
    seen = 0
    for k, text in enumerate(texts):
        if isinstance(text, (bytes, bytearray)):
            raise InputTypeError(f"texts[{k}] is bytes; SuperBPE trains on str (valid UTF-8). Decode it first")
        check_text(text, f"texts[{k}]")
        seen += 1
        for part, special in pre.split_specials(text):
            if not special:
                chunks.update(group_chunks(pre.split(part)))
    if seen == 0:
        raise ValueError("the corpus is empty (no texts); give at least one non-empty text")
    if not chunks:
        raise ValueError(f"the corpus is empty: {seen} text(s) but no characters outside special tokens")
    return chunks


def word_bound(table: list[bytes], max_words: int) -> Callable[[int, int], bool]:
    """The stage-2 veto for `merge_loop`: may tokens a and b of `table` merge, i.e. does their token hold at
    most `max_words` words? Answers are cached per pair (a token's bytes never change)."""
    allowed: dict[tuple[int, int], bool] = {}

    def allow(a: int, b: int) -> bool:
        ok = allowed.get((a, b))
        if ok is None:
            ok = allowed[(a, b)] = count_words_in(table[a] + table[b]) <= max_words
        return ok

    return allow


def train_superbpe(
    texts: Iterable[str] | str,
    vocab_size: int,
    transition: int,
    *,
    pattern: str = DEFAULT_PATTERN,
    special_tokens: Iterable[str] = (),
    bos: str | None = None,
    eos: str | None = None,
    max_words: int = 4,
    min_frequency: int = 2,
    progress: bool = True,
    name: str = "superbpe",
) -> SuperBPEResult:
    """Train SuperBPE (see the module docstring): plain BPE up to `transition` tokens (incl. specials), then
    stage-2 superword merges up to `vocab_size`. transition == vocab_size is plain BPE."""
    specials = _check_params(vocab_size, special_tokens, min_frequency)
    _check_superbpe(vocab_size, transition, max_words, specials)
    for param, value in (("bos", bos), ("eos", eos)):
        if value is not None and value not in specials:
            raise ValueError(f"{param}={value!r} must be one of special_tokens {specials} (or None)")
    pre = Pretokenizer(pattern, specials)
    start = time.perf_counter()
    chunks = count_chunks(texts, pre)
    stage1, stage1_stopped = _stage1(chunks, transition, specials, min_frequency, progress)
    return _stage2(chunks, stage1, stage1_stopped, vocab_size, transition, pattern, specials, bos, eos,
                   max_words, min_frequency, progress, name, start)


def train_superbpe_sweep(
    texts: Iterable[str] | str,
    vocab_size: int,
    transitions: Sequence[int],
    *,
    pattern: str = DEFAULT_PATTERN,
    special_tokens: Iterable[str] = (),
    max_words: int = 4,
    min_frequency: int = 2,
    progress: bool = True,
) -> list[SuperBPEResult]:
    """`train_superbpe` for several transition sizes at once, sharing the corpus pass and stage 1: BPE is
    deterministic and greedy, so stage 1 up to t is the prefix of plain BPE up to max(transitions) that
    reaches t tokens. Each result equals `train_superbpe(texts, vocab_size, t, ...)` (tested)."""
    specials = _check_params(vocab_size, special_tokens, min_frequency)
    transitions = list(transitions)
    if not transitions:
        raise ValueError("transitions must name at least one transition vocabulary size")
    for t in transitions:
        _check_superbpe(vocab_size, t, max_words, specials)
    pre = Pretokenizer(pattern, specials)
    start = time.perf_counter()
    chunks = count_chunks(texts, pre)
    longest, longest_stopped = _stage1(chunks, max(transitions), specials, min_frequency, progress)
    shared = time.perf_counter() - start
    results = []
    for t in transitions:
        size, k = 256, 0
        seen = {bytes([b]) for b in range(256)}
        table = [bytes([b]) for b in range(256)]
        while size < t - len(specials) and k < len(longest):
            a, b = longest[k]
            merged = table[a] + table[b]
            if merged not in seen:
                seen.add(merged)
                table.append(merged)
                size += 1
            k += 1
        stopped = "vocab_size" if size >= t - len(specials) else longest_stopped
        results.append(_stage2(chunks, longest[:k], stopped, vocab_size, t, pattern, specials, None, None,
                               max_words, min_frequency, progress, f"superbpe-t{t}",
                               time.perf_counter() - shared))
    return results


def _stage1(chunks: Counter[tuple[str, ...]], transition: int, specials: list[str], min_frequency: int,
            progress: bool) -> tuple[list[tuple[int, int]], str]:
    words: Counter[bytes] = Counter()
    for chunk, n in chunks.items():
        for piece in chunk:
            words[piece.encode("utf-8", "surrogateescape")] += n
    stage1, _, stopped, _ = train_from_word_counts(
        words, transition, special_tokens=specials, min_frequency=min_frequency, progress=progress)
    return stage1, stopped


def _stage2(chunks: Counter[tuple[str, ...]], stage1: list[tuple[int, int]], stage1_stopped: str,
            vocab_size: int, transition: int, pattern: str, specials: list[str], bos: str | None,
            eos: str | None, max_words: int, min_frequency: int, progress: bool, name: str,
            start: float) -> SuperBPEResult:
    s1 = BPETokenizer(stage1, pattern=pattern)
    table = [s1.token_bytes(i) for i in range(s1.vocab_size)]
    seqs: list[list[int]] = []
    freqs: list[int] = []
    for chunk, n in chunks.items():
        toks: list[int] = []
        for piece in chunk:
            toks.extend(s1._piece_ids(piece))
        if len(toks) > 1:
            seqs.append(toks)
            freqs.append(n)
    stage2: list[tuple[int, int]] = []
    counts2: list[int] = []
    stopped = stage1_stopped
    if stage1_stopped == "vocab_size" and transition < vocab_size:
        stage2, counts2, stopped, _ = merge_loop(
            seqs, freqs, table, vocab_size - len(specials), min_frequency=min_frequency,
            allow=word_bound(table, max_words), progress=progress, desc="SuperBPE stage 2")
    tokenizer = SuperBPETokenizer(stage1, stage2, pattern=pattern, special_tokens=specials, bos=bos, eos=eos,
                                  name=name)
    return SuperBPEResult(tokenizer=tokenizer, transition=transition, stage1_merges=stage1,
                          stage2_merges=stage2, stage2_counts=counts2, distinct_chunks=len(chunks),
                          seconds=time.perf_counter() - start, stopped=stopped, max_words=max_words,
                          stage1_stopped=stage1_stopped)
