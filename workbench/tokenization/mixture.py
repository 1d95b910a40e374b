"""Data mixture inference from a BPE merge list (Hayase, Liu, Choi, Oh, Smith 2024, "Data Mixture Inference:
What do BPE Tokenizers Reveal about their Training Data?").

A BPE trainer picks, at every step t, the most frequent pair in its (mixed) training data. Given the ordered
merge list and a sample of text per category c, we replay the merges on each sample and read n_{c,t}(p), the
count of pair p just before merge t, divided by the sample's size in bytes (counts per byte). If the training
data were the mixture with byte proportions alpha, merge m_t had to be the most frequent pair, i.e.
sum_c alpha_c (n_{c,t}(p) - n_{c,t}(m_t)) <= 0 for every other pair p. Samples are finite and are not the
training data, so constraints get slack, as in the paper: v_t >= 0 per merge step and v_p >= 0 per pair,

    minimise sum_t v_t + sum_p v_p   s.t.   sum_c alpha_c (n_{c,t}(p) - n_{c,t}(m_t)) <= v_t + v_p,
                                             alpha >= 0,  sum_c alpha_c = 1,  v >= 0

solved with scipy's HiGHS. The per-pair slack matters: a pair that is frequent in a category's sample but
rare in the training part of that category (an identifier of one held-out source file, a name in one book)
violates the constraint at every step until it is merged (or forever). With step slack alone that single
sampling accident is paid once per step, hundreds of times, and the cheapest way to pay less is to shrink
that category's alpha: code, the most heterogeneous category, came out at 0.07 instead of 0.20 on a 1 MB /
1000-merge tokenizer. v_p pays for such a pair once (`pair_slack=False` gives the step-slack-only LP).
(Diagnosis: with the training parts themselves as samples that tokenizer was recovered exactly, objective 0
at the truth, so replay, per-sample byte normalisation, pre-tokenizer and byte units were right; on held-out
samples the truth cost 0.34 in step slack against 0.16 at the skewed optimum.)

Keeping the LP small (as the paper does: top pairs plus lazy constraints):
- a pair with n_{c,t}(p) <= n_{c,t}(m_t) in every category satisfies its constraint for any alpha, so only
  pairs above the merge in some category can bind; of those we keep each category's `top_k` most frequent
  pairs per step (the candidates);
- lazy constraint generation: the LP starts with each step's strongest candidate per category; after each
  solve, each step's `add_per_step` most violated candidate constraints (by more than `tol`) are added,
  until none is violated (adding all violated ones at once can swamp HiGHS with 10^5 rows on real
  tokenizers); the rows go into one warm-started HiGHS model (mixture_lp.py);
- steps whose merge never occurs in any sample carry no information and are left out (reported).
The LP is solved on counts per `scale` bytes (scale = the smallest sample's size, so entries are counts in a
sample of that size) to stay well above HiGHS's absolute tolerances; the objective is reported per byte.

Replay: every sample is pre-tokenized with the tokenizer's own pattern into a word-frequency table (no
Unicode normalisation: give samples already in the tokenizer's normal form); merge t is applied to the words
holding the pair (left to right, non-overlapping), updating pair counts incrementally (the same scheme as
bpe_train.py), and a lazily refreshed heap per category yields its top pairs.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from workbench.tokenization.bpe_train import _merge_word
from workbench.tokenization.mixture_merges import merges_from_ranks, merges_of
from workbench.tokenization.pretokenize import DEFAULT_PATTERN, Pretokenizer
from workbench.tokenization.protocol import InputTypeError, check_text

__all__ = ["MixtureResult", "PairRows", "infer_mixture", "merges_from_ranks", "merges_of", "pair_count_rows",
           "solve_mixture"]


@dataclass
class MixtureResult:
    """Inferred byte proportions per category and how the LP went."""

    proportions: dict[str, float]
    merges_given: int
    steps_used: int
    constraints: int
    candidates: int
    rounds: int
    objective: float
    top_k: int
    pair_slack: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def errors(self, truth: Mapping[str, float]) -> dict[str, float]:
        """Absolute error per category against known proportions `truth` (same categories)."""
        if set(truth) != set(self.proportions):
            raise ValueError(f"truth must have the categories {sorted(self.proportions)}, got {sorted(truth)}")
        return {name: abs(self.proportions[name] - float(truth[name])) for name in self.proportions}

    def to_dict(self) -> dict[str, Any]:
        return {"proportions": self.proportions, "merges_given": self.merges_given, "steps_used": self.steps_used,
                "constraints": self.constraints, "candidates": self.candidates, "rounds": self.rounds,
                "objective": self.objective, "top_k": self.top_k, "pair_slack": self.pair_slack, **self.extra}


@dataclass
class PairRows:
    """The replayed counts: one candidate row per (step, pair) that can bind.

    rows[k, c] = n_{c,steps[k]}(pair) - n_{c,steps[k]}(merge) in counts per byte of category c's sample;
    pairs[k] indexes the distinct candidate pairs (for the per-pair slack), pair_tokens[pairs[k]] is that pair
    as (left bytes, right bytes); merged[t, c] is the merge's own count per byte before step t; sizes[c] the
    sample's size in bytes."""

    names: list[str]
    steps: np.ndarray
    pairs: np.ndarray
    rows: np.ndarray
    merged: np.ndarray
    sizes: np.ndarray
    used: int
    pair_tokens: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def n_steps(self) -> int:
        return len(self.merged)


class _Replay:
    """One category's word table under a merge list, with incremental pair counts and a top-pairs heap."""

    def __init__(self, words: Mapping[tuple[int, ...], int]) -> None:
        self.seqs: list[list[int]] = []
        self.freqs: list[int] = []
        self.counts: dict[tuple[int, int], int] = defaultdict(int)
        self.where: dict[tuple[int, int], set[int]] = defaultdict(set)
        self.size = 0
        for word, f in words.items():
            self.size += len(word) * f
            if len(word) < 2:
                continue
            w = len(self.seqs)
            self.seqs.append(list(word))
            self.freqs.append(f)
            for pair in pairwise(word):
                self.counts[pair] += f
                self.where[pair].add(w)
        self.counts = dict(self.counts)
        self.heap = [(-n, pair) for pair, n in self.counts.items()]
        heapq.heapify(self.heap)

    def top(self, k: int) -> list[tuple[int, int]]:
        """The (up to) `k` pairs with the highest current counts."""
        found: list[tuple[int, int]] = []
        seen: set[tuple[int, int]] = set()
        keep = []
        while self.heap and len(found) < k:
            neg, pair = heapq.heappop(self.heap)
            current = self.counts.get(pair, 0)
            if current != -neg:
                if current > 0:
                    heapq.heappush(self.heap, (-current, pair))
                continue
            if pair in seen:
                continue
            seen.add(pair)
            found.append(pair)
            keep.append((neg, pair))
        for item in keep:
            heapq.heappush(self.heap, item)
        return found

    def merge(self, a: int, b: int, c: int) -> None:
        for w in self.where.pop((a, b), ()):
            toks = self.seqs[w]
            new = _merge_word(toks, a, b, c)
            if len(new) == len(toks):
                continue
            f = self.freqs[w]
            delta = Counter(pairwise(new))
            delta.subtract(Counter(pairwise(toks)))
            for pair, d in delta.items():
                if d:
                    n = self.counts.get(pair, 0) + d * f
                    if n:
                        self.counts[pair] = n
                    else:
                        del self.counts[pair]
                    if d > 0:
                        self.where[pair].add(w)
                        heapq.heappush(self.heap, (-n, pair))
            self.seqs[w] = new


def _texts(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _check_inputs(merges: Sequence[tuple[bytes, bytes]], samples: Mapping[str, Sequence[str]]) -> None:
    if not isinstance(samples, Mapping):
        raise InputTypeError(f"samples must be a mapping category -> list of texts, got {type(samples).__name__}")
    if len(samples) < 2:
        raise ValueError(f"samples must have at least 2 categories to infer a mixture, got {len(samples)}: "
                         f"{list(samples)}")
    for name, texts in samples.items():
        texts = _texts(texts)
        if not texts or not any(isinstance(t, str) and t for t in texts):
            raise ValueError(f"samples[{name!r}] is empty; every category needs non-empty sample text")
        for k, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputTypeError(f"samples[{name!r}][{k}] must be str, got {type(t).__name__}")
            check_text(t, f"samples[{name!r}][{k}]")
    if len(merges) == 0:
        raise ValueError("merges is empty; give the tokenizer's ordered merge list")
    for k, m in enumerate(merges[:5]):
        if not (isinstance(m, (tuple, list)) and len(m) == 2 and all(isinstance(x, bytes) for x in m)):
            raise InputTypeError(f"merges[{k}] must be a pair of bytes tokens, got {m!r}")


def _check_int(value: Any, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1{' or None' if allow_none else ''}, got {value!r}")


def pair_count_rows(
    merges: Sequence[tuple[bytes, bytes]],
    samples: Mapping[str, Sequence[str]],
    *,
    pattern: str = DEFAULT_PATTERN,
    top_k: int = 100,
    progress: bool = True,
) -> PairRows:
    """Replay `merges` on each category's sample and collect the candidate constraint rows (see PairRows)."""
    _check_inputs(merges, samples)
    _check_int(top_k, "top_k")
    names = list(samples)
    pre = Pretokenizer(pattern)
    ids = {bytes([b]): b for b in range(256)}
    replays = []
    for name in names:
        words: Counter[tuple[int, ...]] = Counter()
        for text in _texts(samples[name]):
            for piece in pre.pretokens(text):
                words[tuple(piece.encode("utf-8"))] += 1
        replays.append(_Replay(words))
    sizes = np.array([r.size for r in replays], dtype=np.float64)
    pair_ids: dict[tuple[int, int], int] = {}
    table = [bytes([b]) for b in range(256)]
    steps, pairs, rows, merged = [], [], [], []
    used = 0
    for t, (left, right) in enumerate(tqdm(merges, desc="replaying merges", unit="merge", disable=not progress,
                                           leave=False)):
        a, b = ids.get(left), ids.get(right)
        if a is None or b is None:
            raise ValueError(f"merges[{t}] = {(left, right)!r} uses a token no earlier merge created")
        c = ids.setdefault(left + right, len(ids))
        if c == len(table):
            table.append(left + right)
        m = np.array([r.counts.get((a, b), 0) for r in replays], dtype=np.float64) / sizes
        merged.append(m)
        if m.any():
            used += 1
            candidates: set[tuple[int, int]] = set()
            for r in replays:
                candidates.update(p for p in r.top(top_k + 1) if p != (a, b))
            cands = sorted(candidates)
            block = np.array([[r.counts.get(p, 0) for r in replays] for p in cands], dtype=np.float64)
            block = block.reshape(-1, len(names)) / sizes - m
            for k in np.flatnonzero((block > 0).any(axis=1)):
                steps.append(t)
                pairs.append(pair_ids.setdefault(cands[k], len(pair_ids)))
                rows.append(block[k])
        for r in replays:
            r.merge(a, b, c)
    if used == 0:
        raise ValueError("none of the merges ever occurs in the samples: the merge list's tokens are never "
                         "produced from this text (check that the samples and the pre-tokenizer pattern match "
                         "the tokenizer)")
    return PairRows(names=names, steps=np.array(steps, dtype=np.int64), pairs=np.array(pairs, dtype=np.int64),
                    rows=np.array(rows, dtype=np.float64).reshape(-1, len(names)),
                    merged=np.array(merged).reshape(-1, len(names)), sizes=sizes, used=used,
                    pair_tokens=[(table[a], table[b]) for a, b in pair_ids])


def solve_mixture(data: PairRows, *, pair_slack: bool = True, tol: float = 1e-9, add_per_step: int = 10,
                  max_rounds: int = 500, warm: bool = True) -> tuple[np.ndarray, float, int, int]:
    """The LP (module docstring) with lazy constraint generation over the candidate rows of `data`; `warm`
    re-solves one HiGHS model as rows are added (mixture_lp.py). Returns (alpha, objective in counts per
    byte, constraints used, rounds)."""
    from scipy.sparse import csr_matrix, hstack

    from workbench.tokenization.mixture_lp import IncrementalLP

    steps, pairs = data.steps, data.pairs
    n_cat, n_steps = data.rows.shape[1], data.n_steps
    if len(data.rows) == 0:
        return np.full(n_cat, 1 / n_cat), 0.0, 0, 0
    scale = float(data.sizes.min())
    rows = data.rows * scale
    n_pairs = int(pairs.max()) + 1 if pair_slack else 0
    lp = IncrementalLP(np.r_[np.zeros(n_cat), np.ones(n_steps + n_pairs)],
                       np.r_[np.ones(n_cat), np.zeros(n_steps + n_pairs)], warm=warm)
    active = np.zeros(len(rows), dtype=bool)

    def add(idx: np.ndarray) -> None:
        active[idx] = True
        k = np.arange(len(idx))
        blocks = [csr_matrix(rows[idx]),
                  csr_matrix((-np.ones(len(idx)), (k, steps[idx])), shape=(len(idx), n_steps))]
        if pair_slack:
            blocks.append(csr_matrix((-np.ones(len(idx)), (k, pairs[idx])), shape=(len(idx), n_pairs)))
        lp.add_rows(hstack(blocks).tocsr())

    start = np.zeros(len(rows), dtype=bool)
    for c in range(n_cat):  # start: each step's strongest candidate per category
        order = np.lexsort((-rows[:, c], steps))
        start[order[np.r_[True, steps[order][1:] != steps[order][:-1]]]] = True
    add(np.flatnonzero(start))
    alpha, objective, rounds = np.full(n_cat, 1 / n_cat), 0.0, 0
    for rounds in range(1, max_rounds + 1):
        x, fun = lp.solve()
        alpha = x[:n_cat]
        slack = x[n_cat : n_cat + n_steps][steps] + (x[n_cat + n_steps :][pairs] if pair_slack else 0.0)
        objective = fun / scale
        excess = np.where(active, -np.inf, rows @ alpha - slack)
        violated = np.flatnonzero(excess > tol * max(1.0, scale))
        if len(violated) == 0:
            break
        # add each step's `add_per_step` most violated constraints (all of them would swamp HiGHS)
        order = violated[np.lexsort((-excess[violated], steps[violated]))]
        rank = np.arange(len(order)) - np.searchsorted(steps[order], steps[order], side="left")
        add(order[rank < add_per_step])
    return alpha, objective, int(active.sum()), rounds


def infer_mixture(
    merges: Sequence[tuple[bytes, bytes]],
    samples: Mapping[str, Sequence[str]],
    *,
    pattern: str = DEFAULT_PATTERN,
    top_k: int = 100,
    max_merges: int | None = None,
    pair_slack: bool = True,
    progress: bool = True,
) -> MixtureResult:
    """Byte proportions of each category in a BPE tokenizer's training data (see the module docstring).

    `merges` are (left bytes, right bytes) in merge order (see `merges_of`); `samples` maps each category
    (at least 2) to a non-empty list of texts, ideally held out from (but distributed like) the training
    data; `pattern` must be the tokenizer's pre-tokenizer regex; only the first `max_merges` merges are used
    when given; `pair_slack=False` drops the per-pair slack (the step-slack-only LP, which underestimates
    heterogeneous categories on held-out samples)."""
    _check_int(top_k, "top_k")
    _check_int(max_merges, "max_merges", allow_none=True)
    if not isinstance(pair_slack, bool):
        raise InputTypeError(f"pair_slack must be True or False, got {pair_slack!r}")
    if max_merges is not None:
        merges = merges[:max_merges]
    data = pair_count_rows(merges, samples, pattern=pattern, top_k=top_k, progress=progress)
    alpha, objective, n_constraints, rounds = solve_mixture(data, pair_slack=pair_slack)
    alpha = np.clip(alpha, 0, None)
    alpha = alpha / alpha.sum()
    return MixtureResult(proportions={n: float(a) for n, a in zip(data.names, alpha, strict=True)},
                         merges_given=len(merges), steps_used=data.used, constraints=n_constraints,
                         candidates=len(data.rows), rounds=rounds, objective=objective, top_k=top_k,
                         pair_slack=pair_slack)
