"""Goose: an anisotropic spine tree from two training-free token sources (Jin, Nguyen & Inoue, "Goose:
Anisotropic Speculation Trees for Training-Free Speculative Decoding", 2026, arXiv:2604.02047).

The paper observes that tokens copied from an n-gram match in the context (prompt lookup) are accepted several
times more often than tokens predicted from earlier forward passes (token recycling's successor lists), and that
the best tree under a node budget is then anisotropic: the reliable tokens form a deep chain (the spine) and the
unreliable ones spread as wide, shallow branches off every spine node. Our reading, implemented here:

- Spine: the prompt-lookup continuation of the longest matching context n-gram (max_ngram down to min_ngram,
  most recent match; up to `spine_tokens` tokens), a chain under the root.
- Branches: token recycling's adjacency M [V, k] (for every token, the target's top-k successors the last time
  a verification pass scored a position holding it; refreshed from every verified position, as in
  token_recycling.py). Off the root and off every spine node holding token t, the branches are M[t] in rank
  order, skipping the token the spine itself continues with; a branch node holding u continues with M[u]
  (ranks again) down to `branch_depth` levels below its spine anchor.
- Budget allocation (the paper's confidence-adaptive topology, made concrete as a best-first rule): every
  candidate node has a value, the estimated probability that verification accepts it = the product over its
  path of conditional acceptance rates: a_n for a spine node when the match was an n-gram (confidence grows
  with the match length), b_r for a branch node of rank r. Rates are running estimates from verification
  (accepts + w * prior) / (tries + w), a try being a node whose parent the verifier reached; priors
  `spine_prior` and `branch_prior` / (1 + r), weight w = `prior_weight`. Nodes are added best-first by value
  (a node's next-rank sibling and its first child are offered once it is in), so a reliable spine grows deep
  before branches widen, and branches cluster near the root where they are most likely to be reached.
  With no match the tree is token recycling's (branches from the root only).

The tree depends only on the context, the matrix and the statistics: deterministic, verify with 'greedy' or
'deterministic_tree'. Simplification: the paper sizes the tree with a dynamic programme over measured
acceptance profiles; the best-first rule above allocates the same budget greedily from online estimates.
"""
from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..sampling import SamplingConfig
from ..tree import DraftTree
from .base import Drafter, check_budget
from .prompt_lookup import PromptLookupDrafter
from .registry import register_drafter

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from ..verifiers import VerifyResult


def _check_int(value: Any, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _check_rate(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")


@register_drafter
@dataclass
class GooseDrafter(Drafter):
    name = "goose"
    deterministic = True

    max_ngram: int = 3
    min_ngram: int = 1
    spine_tokens: int = 12
    k: int = 8
    branch_depth: int = 3
    spine_prior: float = 0.6
    branch_prior: float = 0.3
    prior_weight: float = 2.0
    reset_each_generation: bool = False
    matrix: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        _check_int(self.max_ngram, "max_ngram (n-gram size)", 1)
        _check_int(self.min_ngram, "min_ngram (n-gram size)", 1)
        if self.min_ngram > self.max_ngram:
            raise ValueError(f"min_ngram ({self.min_ngram}) must be <= max_ngram ({self.max_ngram})")
        _check_int(self.spine_tokens, "spine_tokens", 1)
        _check_int(self.k, "k (successors kept per token)", 1)
        _check_int(self.branch_depth, "branch_depth", 1)
        _check_rate(self.spine_prior, "spine_prior")
        _check_rate(self.branch_prior, "branch_prior")
        if isinstance(self.prior_weight, bool) or not isinstance(self.prior_weight, (int, float)) \
                or not 0 < self.prior_weight < float("inf"):
            raise ValueError(f"prior_weight must be a number > 0, got {self.prior_weight!r}")
        self.lookup = PromptLookupDrafter(self.max_ngram, self.min_ngram, self.spine_tokens)
        self.stats: dict[tuple, list[int]] = {}  # ("spine", n) or ("branch", r) -> [tries, accepts]
        self._root: int | None = None
        self._kinds: list[tuple] = []

    def begin(self, lm: LM | None, prompt_ids: Sequence[int], sampling: SamplingConfig,
              generator: torch.Generator | None = None) -> None:
        if lm is None:
            raise ValueError("goose needs the target LM in begin() (its vocabulary size)")
        vocab = int(lm.vocab_size)
        if self.matrix is None or self.reset_each_generation or self.matrix.shape[0] != vocab:
            self.matrix = torch.full((vocab, self.k), -1, dtype=torch.long)
            self.stats = {}

    # ---- the sources -----------------------------------------------------------------------------------------
    def spine(self, context: Sequence[int]) -> tuple[int, list[int]]:
        """(n, tokens): the length of the matched n-gram (0: none) and the context-matched chain."""
        found = self.lookup.continuations(context)
        if not found:
            return 0, []
        context = list(context)
        for n in range(min(self.max_ngram, len(context) - 1), self.min_ngram - 1, -1):
            tail = context[len(context) - n:]
            if any(context[s:s + n] == tail for s in range(len(context) - n - 1, -1, -1)):
                return n, found[0]
        return 0, []  # pragma: no cover (continuations found a match)

    def rate(self, kind: tuple) -> float:
        """Smoothed conditional acceptance rate of a node kind (see the module docstring)."""
        tries, accepts = self.stats.get(kind, (0, 0))
        prior = self.spine_prior if kind[0] == "spine" else self.branch_prior / (1 + kind[1])
        return (accepts + self.prior_weight * prior) / (tries + self.prior_weight)

    # ---- drafting --------------------------------------------------------------------------------------------
    def propose(self, context_ids: Sequence[int], budget: int) -> DraftTree:
        check_budget(budget)
        if self.matrix is None:
            raise RuntimeError("call begin(lm, prompt_ids, sampling, generator) before propose()")
        context = [int(t) for t in context_ids]
        self._root = context[-1]
        n, spine = self.spine(context)
        spine_kind = ("spine", n)
        tokens: list[int] = []
        parents: list[int] = []
        kinds: list[tuple] = []
        values: list[float] = []
        below: list[int] = []  # branch levels below the spine anchor (0 for spine nodes)
        spine_index: list[int] = []  # position in the spine (-1 for branch nodes)
        heap: list[tuple[float, int, int, tuple, int]] = []  # (-value, order, parent, kind, spine pos or rank)
        order = 0

        def value_of(parent: int) -> float:
            return values[parent] if parent >= 0 else 1.0

        def token_of(parent: int) -> int:
            return tokens[parent] if parent >= 0 else self._root

        def offer_branch(parent: int, rank: int) -> None:
            nonlocal order
            row = self.matrix[token_of(parent)].tolist()
            skip = None
            if parent < 0 or spine_index[parent] >= 0:  # a spine anchor: its spine child is not a branch
                pos = 0 if parent < 0 else spine_index[parent] + 1
                skip = spine[pos] if pos < len(spine) else None
            while rank < len(row) and row[rank] >= 0 and row[rank] == skip:
                rank += 1
            if rank < len(row) and row[rank] >= 0:
                kind = ("branch", rank)
                heapq.heappush(heap, (-value_of(parent) * self.rate(kind), order, parent, kind, rank))
                order += 1

        def offer_spine(parent: int, pos: int) -> None:
            nonlocal order
            if pos < len(spine):
                heapq.heappush(heap, (-value_of(parent) * self.rate(spine_kind), order, parent, spine_kind, pos))
                order += 1

        offer_spine(-1, 0)
        offer_branch(-1, 0)
        while heap and len(tokens) < budget:
            neg, _, parent, kind, where = heapq.heappop(heap)
            node = len(tokens)
            values.append(-neg)
            kinds.append(kind)
            parents.append(parent)
            if kind[0] == "spine":
                tokens.append(spine[where])
                spine_index.append(where)
                below.append(0)
                offer_spine(node, where + 1)
                offer_branch(node, 0)
            else:
                tokens.append(int(self.matrix[token_of(parent), where]))
                spine_index.append(-1)
                below.append((below[parent] if parent >= 0 else 0) + 1)
                offer_branch(parent, where + 1)
                if below[node] < self.branch_depth:
                    offer_branch(node, 0)
        self._kinds = kinds
        return DraftTree(tokens, parents)

    def update(self, tree: DraftTree, result: VerifyResult, logits: torch.Tensor) -> None:
        if self.matrix is None or self._root is None:
            return
        ids = [self._root] + tree.tokens.tolist()
        if logits.ndim != 2 or logits.shape[0] != len(ids):
            raise ValueError(f"logits must have shape [n + 1, V] = [{len(ids)}, V], got {tuple(logits.shape)}")
        top = torch.topk(logits.detach().float().cpu(), min(self.k, logits.shape[-1]), dim=-1).indices
        for token, row in zip(ids, top):
            self.matrix[token, : row.shape[0]] = row
        if len(self._kinds) != len(tree):
            return
        accepted = set(result.accepted_nodes)
        for node in range(len(tree)):
            parent = tree.parent(node)
            if parent < 0 or parent in accepted:
                entry = self.stats.setdefault(self._kinds[node], [0, 0])
                entry[0] += 1
                entry[1] += node in accepted
