"""Data mixture inference from a BPE merge list (Hayase, Liu, Choi, Oh, Smith 2024, "Data Mixture Inference:
What do BPE Tokenizers Reveal about their Training Data?").

A BPE trainer picks, at every step t, the most frequent pair in its (mixed) training data. Given the ordered
merge list and a sample of text per category c, we replay the merges on each sample and read n_{c,t}(p), the
count of pair p just before merge t, divided by the sample's size in bytes (counts per byte). If the training
data were the mixture with byte proportions alpha, merge m_t had to be the most frequent pair, i.e.
sum_c alpha_c (n_{c,t}(p) - n_{c,t}(m_t)) <= 0 for every other pair p. Samples are finite, so each step gets a
slack v_t >= 0 and we solve the linear program

    minimise sum_t v_t   s.t.   sum_c alpha_c (n_{c,t}(p) - n_{c,t}(m_t)) <= v_t   for all t, p != m_t,
                                alpha >= 0,  sum_c alpha_c = 1,  v >= 0

with scipy's HiGHS. Keeping it small (as the paper does, top pairs plus lazy constraints):
- a pair with n_{c,t}(p) <= n_{c,t}(m_t) in every category satisfies its constraint for any alpha, so only
  pairs above the merge in some category can bind; of those we keep each category's `top_k` most frequent
  pairs per step (the candidates);
- lazy constraint generation: the LP starts with each step's single strongest candidate per category; after
  each solve, every candidate constraint violated by more than `tol` is added, until none is;
- steps whose merge never occurs in any sample carry no information and are left out (reported).

Replay: every sample is pre-tokenized with the tokenizer's own pattern into a word-frequency table; merge t
is applied to the words holding the pair (left to right, non-overlapping), updating pair counts
incrementally (the same scheme as bpe_train.py), and a lazily refreshed heap per category yields its top pairs.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from workbench.tokenization.bpe_train import _merge_word
from workbench.tokenization.pretokenize import DEFAULT_PATTERN, Pretokenizer
from workbench.tokenization.protocol import InputTypeError, check_text


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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"proportions": self.proportions, "merges_given": self.merges_given, "steps_used": self.steps_used,
                "constraints": self.constraints, "candidates": self.candidates, "rounds": self.rounds,
                "objective": self.objective, "top_k": self.top_k, **self.extra}


class _Replay:
    """One category's word table under a merge list, with incremental pair counts and a top-pairs heap."""

    def __init__(self, words: Mapping[bytes, int], ids: dict[bytes, int]) -> None:
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


def _check_inputs(merges: Sequence[tuple[bytes, bytes]], samples: Mapping[str, Sequence[str]]) -> None:
    if not isinstance(samples, Mapping):
        raise InputTypeError(f"samples must be a mapping category -> list of texts, got {type(samples).__name__}")
    if len(samples) < 2:
        raise ValueError(f"samples must have at least 2 categories to infer a mixture, got {len(samples)}: "
                         f"{list(samples)}")
    for name, texts in samples.items():
        if isinstance(texts, str):
            texts = [texts]
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


def pair_count_rows(
    merges: Sequence[tuple[bytes, bytes]],
    samples: Mapping[str, Sequence[str]],
    *,
    pattern: str = DEFAULT_PATTERN,
    top_k: int = 100,
    progress: bool = True,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, int]:
    """Replay `merges` on each category's sample. Returns (categories, step of each candidate row,
    candidate rows n_c(p) - n_c(m_t) per byte [rows x categories], merged-pair counts per byte
    [steps x categories], number of steps whose merge occurs in some sample)."""
    _check_inputs(merges, samples)
    names = list(samples)
    pre = Pretokenizer(pattern)
    ids = {bytes([b]): b for b in range(256)}
    replays = []
    for name in names:
        texts = [samples[name]] if isinstance(samples[name], str) else samples[name]
        words: Counter[tuple[int, ...]] = Counter()
        for text in texts:
            for piece in pre.pretokens(text):
                words[tuple(piece.encode("utf-8"))] += 1
        replays.append(_Replay(words, ids))
    sizes = np.array([r.size for r in replays], dtype=np.float64)
    steps, rows, merged = [], [], []
    used = 0
    for t, (left, right) in enumerate(tqdm(merges, desc="replaying merges", unit="merge", disable=not progress,
                                           leave=False)):
        a, b = ids.get(left), ids.get(right)
        if a is None or b is None:
            raise ValueError(f"merges[{t}] = {(left, right)!r} uses a token no earlier merge created")
        c = ids.setdefault(left + right, len(ids))
        m = np.array([r.counts.get((a, b), 0) for r in replays], dtype=np.float64) / sizes
        merged.append(m)
        if m.any():
            used += 1
            candidates: set[tuple[int, int]] = set()
            for r in replays:
                candidates.update(p for p in r.top(top_k + 1) if p != (a, b))
            for p in sorted(candidates):
                row = np.array([r.counts.get(p, 0) for r in replays], dtype=np.float64) / sizes - m
                if (row > 0).any():
                    steps.append(t)
                    rows.append(row)
        for r in replays:
            r.merge(a, b, c)
    if used == 0:
        raise ValueError("none of the merges ever occurs in the samples: the merge list's tokens are never "
                         "produced from this text (check that the samples and the pre-tokenizer pattern match "
                         "the tokenizer)")
    return (names, np.array(steps, dtype=np.int64), np.array(rows, dtype=np.float64).reshape(-1, len(names)),
            np.array(merged), used)


def solve_mixture(steps: np.ndarray, rows: np.ndarray, n_steps: int, *, tol: float = 1e-12,
                  max_rounds: int = 50) -> tuple[np.ndarray, float, int, int]:
    """The LP with lazy constraint generation. Returns (alpha, objective, constraints used, rounds)."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, hstack

    n_cat = rows.shape[1]
    if len(rows) == 0:
        return np.full(n_cat, 1 / n_cat), 0.0, 0, 0
    active = np.zeros(len(rows), dtype=bool)
    for c in range(n_cat):  # start: each step's strongest candidate per category
        order = np.lexsort((-rows[:, c], steps))
        first = np.r_[True, steps[order][1:] != steps[order][:-1]]
        active[order[first]] = True
    cost = np.r_[np.zeros(n_cat), np.ones(n_steps)]
    a_eq = np.r_[np.ones(n_cat), np.zeros(n_steps)][None, :]
    alpha, objective, rounds = np.full(n_cat, 1 / n_cat), 0.0, 0
    for rounds in range(1, max_rounds + 1):
        idx = np.flatnonzero(active)
        slack = csr_matrix((-np.ones(len(idx)), (np.arange(len(idx)), steps[idx])), shape=(len(idx), n_steps))
        a_ub = hstack([csr_matrix(rows[idx]), slack]).tocsr()
        res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(len(idx)), A_eq=a_eq, b_eq=[1.0],
                      bounds=[(0, None)] * (n_cat + n_steps), method="highs")
        if res.status != 0:
            raise RuntimeError(f"the mixture LP failed: {res.message}")
        alpha, v = res.x[:n_cat], res.x[n_cat:]
        objective = float(res.fun)
        violated = (rows @ alpha - v[steps] > tol) & ~active
        if not violated.any():
            break
        active |= violated
    return alpha, objective, int(active.sum()), rounds


def infer_mixture(
    merges: Sequence[tuple[bytes, bytes]],
    samples: Mapping[str, Sequence[str]],
    *,
    pattern: str = DEFAULT_PATTERN,
    top_k: int = 100,
    max_merges: int | None = None,
    progress: bool = True,
) -> MixtureResult:
    """Byte proportions of each category in a BPE tokenizer's training data (see the module docstring).

    `merges` are (left bytes, right bytes) in merge order (see `merges_of`); `samples` maps each category
    (at least 2) to a non-empty list of texts; `pattern` must be the tokenizer's pre-tokenizer regex."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
    if max_merges is not None:
        if isinstance(max_merges, bool) or not isinstance(max_merges, int) or max_merges < 1:
            raise ValueError(f"max_merges must be an int >= 1 or None, got {max_merges!r}")
        merges = merges[:max_merges]
    names, steps, rows, _, used = pair_count_rows(merges, samples, pattern=pattern, top_k=top_k,
                                                  progress=progress)
    alpha, objective, n_constraints, rounds = solve_mixture(steps, rows, len(merges))
    alpha = np.clip(alpha, 0, None)
    alpha = alpha / alpha.sum()
    return MixtureResult(proportions={n: float(a) for n, a in zip(names, alpha, strict=True)},
                         merges_given=len(merges), steps_used=used, constraints=n_constraints,
                         candidates=len(rows), rounds=rounds, objective=objective, top_k=top_k)


def merges_of(tokenizer: Any) -> tuple[list[tuple[bytes, bytes]], str]:
    """(ordered merges as byte pairs, pre-tokenizer pattern) of a project BPETokenizer, a TiktokenTokenizer
    (merges recovered from the ranks: each token splits into the two tokens BPE with lower ranks ends at),
    or an HF byte-level BPE tokenizer.json (path or folder)."""
    from workbench.tokenization.bpe import BPETokenizer
    from workbench.tokenization.tiktoken_adapter import TiktokenTokenizer

    if isinstance(tokenizer, BPETokenizer):
        return [(tokenizer.token_bytes(a), tokenizer.token_bytes(b)) for a, b in tokenizer.merges], tokenizer.pattern
    if isinstance(tokenizer, TiktokenTokenizer):
        enc = tokenizer.backend
        return _merges_from_ranks(enc._mergeable_ranks), enc._pat_str
    if isinstance(tokenizer, (str, Path)):
        return _merges_from_hf_json(Path(tokenizer))
    raise InputTypeError(f"tokenizer must be a BPETokenizer, TiktokenTokenizer or a tokenizer.json path, "
                         f"got {type(tokenizer).__name__}")


def _merges_from_ranks(ranks: Mapping[bytes, int]) -> list[tuple[bytes, bytes]]:
    out = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) < 2:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best, pos = None, -1
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best):
                    best, pos = r, i
            if best is None:
                break
            parts[pos : pos + 2] = [parts[pos] + parts[pos + 1]]
        if len(parts) == 2:
            out.append((parts[0], parts[1]))
    return out


def _merges_from_hf_json(path: Path) -> tuple[list[tuple[bytes, bytes]], str]:
    from workbench.tokenization.hf import bytes_to_unicode

    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"tokenizer path {str(path)!r} has no tokenizer.json")
    data = json.loads(file.read_text(encoding="utf-8"))
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise ValueError(f"{str(file)!r} is not a BPE tokenizer (model type {model.get('type')!r})")
    back = {ch: b for b, ch in bytes_to_unicode().items()}

    def raw(s: str) -> bytes:
        return bytes(back[ch] for ch in s)

    merges = []
    for m in model["merges"]:
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        merges.append((raw(left), raw(right)))
    pattern = None
    pre = data.get("pre_tokenizer") or {}
    for item in pre.get("pretokenizers", [pre]):
        if item.get("type") == "Split" and "Regex" in item.get("pattern", {}):
            pattern = item["pattern"]["Regex"]
            break
    if pattern is None:
        raise ValueError(f"{str(file)!r} has no Split regex pre-tokenizer to replay with")
    return merges, pattern
