"""Byte-level BPE training with incremental pair counts (Sennrich et al. 2016; byte-level as in GPT-2).

The corpus is reduced to a word-frequency table: each distinct pre-token (pretokenize.py) with its count, as
a list of token ids starting from its bytes. Then, per merge:

- the best pair is read off a heap of (-count, left bytes, right bytes) entries with lazy invalidation: an
  entry whose count is no longer current is dropped when it reaches the top and re-pushed with the current
  count if that is still positive. Every pair with a positive count keeps at least one entry at least as large
  as its current count (counts only fall, except for pairs whose count rises, which are pushed afresh), so the
  first entry that is current is the true best;
- an index pair -> words containing it (kept loosely: a word that lost the pair is skipped when visited)
  gives the words to update; each is rewritten with the merged token and its pair counts are adjusted by the
  difference between its old and new pairs times its frequency. A merge therefore costs time proportional to
  the words it touches, never a pass over the corpus.

Tie-breaking (deterministic, independent of dict or set order): the pair with the highest count wins; among
equal counts, the lexicographically smallest (bytes of left token, bytes of right token), compared as byte
strings, left first. E.g. with equal counts (b"a", b"b") beats (b"a", b"c") beats (b"b", b"a").

Merged tokens whose bytes already exist reuse that id (as HF's trainer does). Training stops when the
vocabulary (256 bytes + merged tokens + special tokens) reaches `vocab_size`, or when the best pair occurs
fewer than `min_frequency` times.

With `record_pair_counts=True` the result carries a PairCountLog (pair_counts.py): every pair's count at
every merge step, as compact deltas.

The loop itself is `merge_loop`: it starts from any token sequences (bytes here; SuperBPE's stage 2 starts
from stage-1 tokens) and takes an optional `allow(a, b)` veto on pairs (SuperBPE's bound on words per token).
"""

from __future__ import annotations

import heapq
import inspect
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import torch
from tqdm.auto import tqdm

from workbench.tokenization.bpe import BPETokenizer
from workbench.tokenization.pair_counts import PairCountLog, PairCountRecorder, count_pairs
from workbench.tokenization.pretokenize import (
    DEFAULT_PATTERN,
    Pretokenizer,
    check_special_tokens,
)
from workbench.tokenization.protocol import InputTypeError, check_text


@dataclass
class BPETrainResult:
    """What `train_bpe` returns: the tokenizer plus how training went."""

    tokenizer: BPETokenizer
    merges: list[tuple[int, int]]
    distinct_words: int
    total_words: int
    seconds: float
    count_seconds: float
    stopped: str  # "vocab_size" | "min_frequency" | "no_pairs"
    merge_counts: list[int] = field(default_factory=list)  # count of each merged pair when chosen
    pair_counts: PairCountLog | None = None

    @property
    def merges_per_second(self) -> float:
        merge_time = self.seconds - self.count_seconds
        return len(self.merges) / merge_time if merge_time > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            "vocab_size": self.tokenizer.vocab_size,
            "merges": len(self.merges),
            "distinct_words": self.distinct_words,
            "total_words": self.total_words,
            "seconds": self.seconds,
            "count_seconds": self.count_seconds,
            "merges_per_second": self.merges_per_second,
            "stopped": self.stopped,
            "pair_counts": self.pair_counts.to_dict() if self.pair_counts is not None else None,
        }

    def __repr__(self) -> str:
        return (f"BPETrainResult(vocab_size={self.tokenizer.vocab_size}, merges={len(self.merges)}, "
                f"words={self.distinct_words}/{self.total_words}, seconds={self.seconds:.2f}, "
                f"stopped={self.stopped!r})")


def _check_params(vocab_size: object, special_tokens: Iterable[str], min_frequency: object) -> list[str]:
    specials = check_special_tokens(special_tokens)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise InputTypeError(f"vocab_size must be an int, got {vocab_size!r}")
    smallest = 256 + len(specials)
    if vocab_size < smallest:
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the byte alphabet plus special tokens "
            f"(256 + {len(specials)} = {smallest}); vocab_size must be at least {smallest}"
        )
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an int >= 1, got {min_frequency!r}")
    return specials


def count_words(texts: Iterable[str], pre: Pretokenizer, *, raw: bool = False) -> Counter[bytes]:
    """Word-frequency table: each distinct pre-token's bytes and how often it occurs (special tokens skipped).

    Text input must be valid UTF-8 str; with raw=True the items are bytes (invalid UTF-8 allowed), split with
    surrogateescape so every byte is kept.
    """
    if isinstance(texts, (str, bytes, bytearray)):
        texts = [texts]
    pieces: Counter[str] = Counter()
    seen = 0
    for k, item in enumerate(texts):
        if raw:
            if not isinstance(item, (bytes, bytearray, memoryview)):
                raise InputTypeError(f"data[{k}] must be bytes, got {type(item).__name__} (use train_bpe for text)")
            item = bytes(item).decode("utf-8", "surrogateescape")
        else:
            if isinstance(item, (bytes, bytearray)):
                raise InputTypeError(f"texts[{k}] is bytes; text paths need str (valid UTF-8). Decode it first, "
                                     "or train on raw bytes with train_bpe_from_bytes")
            check_text(item, f"texts[{k}]")
        seen += 1
        pieces.update(pre.pretokens(item))
    if seen == 0:
        raise ValueError("the corpus is empty (no texts); give at least one non-empty text")
    words: Counter[bytes] = Counter()
    for piece, n in pieces.items():
        words[piece.encode("utf-8", "surrogateescape")] += n
    if not words:
        raise ValueError(f"the corpus is empty: {seen} text(s) but no characters outside special tokens")
    return words


def _check_device(device: object) -> torch.device:
    if device is None:
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be None or a torch device such as 'cpu' or 'cuda', got {device!r}") from None


def _merge_word(toks: list[int], a: int, b: int, c: int) -> list[int]:
    """`toks` with every non-overlapping (a, b), left to right, replaced by c."""
    out: list[int] = []
    i, last = 0, len(toks) - 1
    while i < last:
        x = toks[i]
        if x == a and toks[i + 1] == b:
            out.append(c)
            i += 2
        else:
            out.append(x)
            i += 1
    if i == last:
        out.append(toks[last])
    return out


def train_from_word_counts(
    words: dict[bytes, int],
    vocab_size: int,
    *,
    special_tokens: Iterable[str] = (),
    min_frequency: int = 2,
    record_pair_counts: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> tuple[list[tuple[int, int]], list[int], str, PairCountLog | None]:
    """The merge loop over a word-frequency table (see the module docstring), starting from bytes.

    Returns (merges, count of each merged pair, why it stopped, pair-count log or None).
    """
    specials = _check_params(vocab_size, special_tokens, min_frequency)
    _check_device(device)
    seqs: list[list[int]] = []
    freqs: list[int] = []
    for word, f in words.items():
        if len(word) >= 2:
            seqs.append(list(word))
            freqs.append(f)
    table = [bytes([i]) for i in range(256)]
    return merge_loop(seqs, freqs, table, vocab_size - len(specials), min_frequency=min_frequency,
                      record_pair_counts=record_pair_counts, progress=progress, device=device)


def merge_loop(
    seqs: list[list[int]],
    freqs: list[int],
    table: list[bytes],
    target: int,
    *,
    min_frequency: int = 2,
    allow: Callable[[int, int], bool] | None = None,
    record_pair_counts: bool = False,
    progress: bool = True,
    desc: str = "BPE merges",
    device: str | None = None,
) -> tuple[list[tuple[int, int]], list[int], str, PairCountLog | None]:
    """The incremental merge loop (see the module docstring) on token sequences `seqs` (ids into `table`,
    each weighted by `freqs`) until `table` has `target` entries; `seqs` and `table` are updated in place.

    `allow(a, b)`, when given, vetoes pairs: a current best pair it rejects is dropped from the heap (and
    dropped again if its count rises later) and the next best pair is taken. None allows every pair.
    `device`: None or "cpu" counts the starting pairs here; a CUDA device counts them with the CUDA pair-count
    kernel (pair_counts.count_pairs); the merges that follow are the same either way.
    Returns (merges, count of each merged pair, why it stopped, pair-count log or None).
    """
    ids = {piece: i for i, piece in enumerate(table)}
    on_cpu = _check_device(device).type == "cpu"
    counts: dict[tuple[int, int], int] = defaultdict(int) if on_cpu else count_pairs(seqs, freqs, device)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for w, toks in enumerate(seqs):
        f = freqs[w]
        for pair in pairwise(toks):
            if on_cpu:
                counts[pair] += f
            where[pair].add(w)
    counts = dict(counts)
    recorder = PairCountRecorder(counts) if record_pair_counts else None
    heap = [(-n, table[a], table[b], a, b) for (a, b), n in counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    merge_counts: list[int] = []
    stopped = "vocab_size"
    bar = tqdm(total=max(target - len(table), 0), desc=desc, unit="merge", disable=not progress, leave=False)
    while len(table) < target:
        while heap:  # lazy invalidation: drop or refresh stale entries until the top is current
            neg, _, _, a, b = heap[0]
            current = counts.get((a, b), 0)
            if current == -neg:
                if allow is None or allow(a, b):
                    break
                heapq.heappop(heap)  # vetoed; re-pushed only if its count rises (then vetoed again)
                continue
            heapq.heappop(heap)
            if current > 0:
                heapq.heappush(heap, (-current, table[a], table[b], a, b))
        if not heap:
            stopped = "no_pairs"
            break
        if current < min_frequency:
            stopped = "min_frequency"
            break
        heapq.heappop(heap)
        merged = table[a] + table[b]
        c = ids.get(merged)
        if c is None:
            c = ids[merged] = len(table)
            table.append(merged)
            bar.update(1)
        merges.append((a, b))
        merge_counts.append(current)

        before: dict[tuple[int, int], int] = {}
        for w in where.pop((a, b)):
            toks = seqs[w]
            new = _merge_word(toks, a, b, c)
            if len(new) == len(toks):
                continue  # this word lost the pair in an earlier merge
            f = freqs[w]
            delta = Counter(pairwise(new))
            delta.subtract(Counter(pairwise(toks)))
            for pair, d in delta.items():
                if d:
                    old = counts.get(pair, 0)
                    before.setdefault(pair, old)
                    n = old + d * f
                    if n:
                        counts[pair] = n
                    else:
                        del counts[pair]
                    if d > 0:
                        where[pair].add(w)
            seqs[w] = new
        for pair, old in before.items():
            n = counts.get(pair, 0)
            if n > old:
                heapq.heappush(heap, (-n, table[pair[0]], table[pair[1]], pair[0], pair[1]))
        if recorder is not None:
            recorder.step((a, b), ((pair, counts.get(pair, 0)) for pair in before))
    bar.close()
    return merges, merge_counts, stopped, recorder.finish() if recorder is not None else None


def train_bpe(
    texts: Iterable[str] | str,
    vocab_size: int,
    *,
    pattern: str = DEFAULT_PATTERN,
    special_tokens: Iterable[str] = (),
    bos: str | None = None,
    eos: str | None = None,
    min_frequency: int = 2,
    record_pair_counts: bool = False,
    progress: bool = True,
    name: str = "bpe",
    device: str | None = None,
) -> BPETrainResult:
    """Train a byte-level BPE on `texts` (str items, valid UTF-8) up to `vocab_size` tokens (incl. specials).

    `pattern` is the pre-tokenizer regex (default: the cl100k-style pattern); `special_tokens` get the last
    ids and are never merged with text; `bos`/`eos` name two of them; `device` "cuda" counts the starting
    pairs on the GPU (see merge_loop). See the module docstring for the algorithm, the tie-breaking and when
    training stops.
    """
    return _train(False, texts, vocab_size, pattern, special_tokens, bos, eos, min_frequency,
                  record_pair_counts, progress, name, device)


def train_bpe_from_bytes(data: Iterable[bytes] | bytes, vocab_size: int, **options: Any) -> BPETrainResult:
    """Like `train_bpe`, with the same keyword options, on raw bytes, which need not be valid UTF-8: bytes
    that are not part of a valid UTF-8 character stay single bytes for pre-tokenization (surrogateescape) and
    can still be merged. Special-token text inside the bytes is cut out as in `train_bpe`."""
    args = inspect.signature(train_bpe).bind(data, vocab_size, **options)  # unknown options fail as there
    args.apply_defaults()
    return _train(True, *args.arguments.values())


def _train(raw: bool, corpus: Any, vocab_size: int, pattern: str, special_tokens: Iterable[str],
           bos: str | None, eos: str | None, min_frequency: int, record: bool, progress: bool,
           name: str, device: str | None) -> BPETrainResult:
    specials = _check_params(vocab_size, special_tokens, min_frequency)
    _check_device(device)
    for param, value in (("bos", bos), ("eos", eos)):
        if value is not None and value not in specials:
            raise ValueError(f"{param}={value!r} must be one of special_tokens {specials} (or None)")
    pre = Pretokenizer(pattern, specials)
    start = time.perf_counter()
    words = count_words(corpus, pre, raw=raw)
    count_seconds = time.perf_counter() - start
    merges, merge_counts, stopped, log = train_from_word_counts(
        words, vocab_size, special_tokens=specials, min_frequency=min_frequency,
        record_pair_counts=record, progress=progress, device=device,
    )
    seconds = time.perf_counter() - start
    tokenizer = BPETokenizer(merges, pattern=pattern, special_tokens=specials, bos=bos, eos=eos, name=name)
    return BPETrainResult(
        tokenizer=tokenizer,
        merges=merges,
        distinct_words=len(words),
        total_words=sum(words.values()),
        seconds=seconds,
        count_seconds=count_seconds,
        stopped=stopped,
        merge_counts=merge_counts,
        pair_counts=log,
    )
