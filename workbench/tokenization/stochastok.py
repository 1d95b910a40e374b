"""StochasTok (Sims et al. 2025, "StochasTok: Improving Fine-Grained Subword Understanding in LLMs").

A post-processing step on the ids of any tokenizer: repeatedly pick a token at random and replace it by a
pair of vocabulary tokens whose bytes concatenate to its bytes. The text is unchanged (the bytes are the
same), but the model sees the inside of its tokens during training.

Split table: for every token t, all pairs (a, b) with bytes(a) + bytes(b) == bytes(t). It is built from a
hash map bytes -> id by trying every split point of every token: time linear in (vocabulary size x token
length), no pass over pairs of tokens. Special tokens are neither split nor used as halves; when several ids
share the same bytes (added tokens duplicating vocabulary entries) the smallest ordinary id stands for them.
The table is three flat integer arrays (CSR layout), so it pickles cheaply for `datasets.map` workers.

Expansion of a sequence of n ids with probability p (as in the paper: a number of expansion steps
proportional to the sequence length; each step picks a position uniformly from the current sequence and,
if that token has splits, replaces it by one chosen uniformly; a token without splits leaves the step
unused). The number of steps is floor(p * n) plus one more with probability equal to the fractional part,
so the expected number is exactly p * n also for short sequences (the paper takes floor(p * n), which is 0
for every sequence shorter than 1/p).

Seeds: `expand(ids, seed)` is reproducible; for `datasets.map`, `map_function()` returns a picklable callable
taking (batch, indices) that seeds each example from (seed, its index), so results do not depend on the
batch size or the number of worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.tokenization.protocol import Tokenizer, check_ids


@dataclass(frozen=True)
class SplitTable:
    """For token t, its splits are (left[k], right[k]) for k in offsets[t]:offsets[t+1]."""

    offsets: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @property
    def vocab_size(self) -> int:
        return len(self.offsets) - 1

    def splits(self, token_id: int) -> list[tuple[int, int]]:
        lo, hi = int(self.offsets[token_id]), int(self.offsets[token_id + 1])
        return list(zip(self.left[lo:hi].tolist(), self.right[lo:hi].tolist()))

    @property
    def num_splittable(self) -> int:
        return int(np.count_nonzero(np.diff(self.offsets)))


def _all_token_bytes(tokenizer: Tokenizer) -> list[bytes | None]:
    out: list[bytes | None] = []
    for i in range(tokenizer.vocab_size):
        if i in tokenizer.special_ids:
            out.append(None)
            continue
        try:
            out.append(tokenizer.token_bytes(i))
        except ValueError:  # a hole in the vocabulary
            out.append(None)
    return out


def build_split_table(tokenizer: Tokenizer) -> SplitTable:
    """The split table of `tokenizer` (see the module docstring)."""
    pieces = _all_token_bytes(tokenizer)
    ids: dict[bytes, int] = {}
    for i, piece in enumerate(pieces):
        if piece and piece not in ids:
            ids[piece] = i
    offsets = [0]
    left: list[int] = []
    right: list[int] = []
    for piece in pieces:
        if piece is not None:
            for k in range(1, len(piece)):
                a = ids.get(piece[:k])
                if a is not None:
                    b = ids.get(piece[k:])
                    if b is not None:
                        left.append(a)
                        right.append(b)
        offsets.append(len(left))
    return SplitTable(np.array(offsets, dtype=np.int64), np.array(left, dtype=np.int64),
                      np.array(right, dtype=np.int64))


def _check_p(p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 0:
        raise ValueError(f"p must be a finite number >= 0 (expected expansion steps per token), got {p!r}")
    return float(p)


def expand_ids(ids: Sequence[int], table: SplitTable, p: float, rng: np.random.Generator) -> list[int]:
    """One StochasTok expansion of `ids` (see the module docstring) with the random generator `rng`."""
    out = list(ids)
    steps_float = p * len(out)
    steps = int(steps_float)
    if rng.random() < steps_float - steps:
        steps += 1
    offsets, left, right = table.offsets, table.left, table.right
    for _ in range(steps):
        i = int(rng.integers(len(out)))
        t = out[i]
        lo, hi = offsets[t], offsets[t + 1]
        if hi > lo:
            k = int(rng.integers(lo, hi))
            out[i : i + 1] = (int(left[k]), int(right[k]))
    return out


class StochasTok:
    """StochasTok over any Tokenizer-protocol tokenizer: `encode(text, seed)`, `expand(ids, seed)`,
    `map_function()` for `datasets.map`."""

    def __init__(self, tokenizer: Tokenizer, p: float = 0.1, seed: int = 0) -> None:
        self.tokenizer = tokenizer
        self.p = _check_p(p)
        self.seed = int(seed)
        self.table = build_split_table(tokenizer)
        self._rng = np.random.default_rng(self.seed)

    def expand(self, ids: Sequence[int], seed: int | None = None) -> list[int]:
        """Expanded ids; with `seed` reproducible, else from this object's own seeded stream."""
        ids = check_ids(ids, self.tokenizer.vocab_size)
        rng = self._rng if seed is None else np.random.default_rng(seed)
        return expand_ids(ids, self.table, self.p, rng)

    def encode(self, text: str, seed: int | None = None, add_special_tokens: bool = False) -> list[int]:
        """The tokenizer's ids for `text`, expanded."""
        return self.expand(self.tokenizer.encode(text, add_special_tokens=add_special_tokens), seed)

    def map_function(self, column: str = "input_ids", output_column: str | None = None) -> StochasTokMap:
        """A picklable batched function for `dataset.map(fn, batched=True, with_indices=True)`."""
        return StochasTokMap(self.table, self.p, self.seed, column, output_column or column)

    def __repr__(self) -> str:
        return (f"StochasTok(tokenizer={self.tokenizer.name!r}, p={self.p}, seed={self.seed}, "
                f"splittable_tokens={self.table.num_splittable}, pairs={len(self.table.left)})")


@dataclass(frozen=True)
class StochasTokMap:
    """(batch, indices) -> {output_column: expanded ids}; example k is seeded by (seed, indices[k])."""

    table: SplitTable
    p: float
    seed: int
    column: str = "input_ids"
    output_column: str = "input_ids"

    def __call__(self, batch: dict[str, Any], indices: Sequence[int] | int) -> dict[str, Any]:
        if self.column not in batch:
            raise ValueError(f"column {self.column!r} is not in the batch (columns: {sorted(batch)})")
        rows = batch[self.column]
        single = isinstance(indices, int)  # datasets.map without batched=True passes one example
        if single:
            rows, indices = [rows], [indices]
        out = [
            expand_ids(list(row), self.table, self.p, np.random.default_rng([self.seed, int(idx)]))
            for row, idx in zip(rows, indices, strict=True)
        ]
        return {self.output_column: out[0] if single else out}
