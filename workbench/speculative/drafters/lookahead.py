"""Lookahead: multi-branch drafts retrieved from a trie of n-grams (Zhao et al., "Lookahead: An Inference
Acceleration Framework for Large Language Model with Lossless Generation Accuracy", 2023), the n-gram pool of
Lookahead decoding (Fu et al., "Break the Sequential Dependency of LLM Inference Using Lookahead Decoding", 2024)
used as trie retrieval.

The trie holds every n-gram (n <= `ngram`) of the texts it has seen: an optional corpus given at construction
(texts, encoded with the target's tokenizer, or token id lists), each prompt, and the output as it is verified.
A node's `count` is the number of positions where its root-to-node n-gram occurs (windows near the end of a
sequence are truncated there, so counts equal plain n-gram frequencies). Sequences are indexed incrementally:
the last `ngram` positions stay "open" and every appended token extends each of them by one node.

Drafting (Zhao et al.'s multi-branch retrieval): find the longest suffix of the context (at most `max_match`
tokens, at least `min_match`) that is in the trie with at least one continuation; the draft is the subtrie below
it, grown best-first by frequency (the most frequent continuation node anywhere in the subtrie next; ties in the
order the continuations were first seen) until `budget` nodes, so the most frequent branches come first and
rare ones are cut. The tree is a function of the context and the trie: deterministic, verify with 'greedy' or
'deterministic_tree'.

Simplifications (stated here as the project asks):
- Fu et al. fill their pool with n-grams from a Jacobi "lookahead branch" computed in the same target forward
  pass; that needs extra rows in the verification pass, which the decode loop does not add, so this drafter is
  retrieval only (Zhao et al.'s setting), fed from corpus, prompts and verified outputs.
- Zhao et al. drop a query's prompt branches after the query and prune the trie to a node capacity; here the trie
  keeps everything (prompts included) until `reset_each_generation` or a new drafter; the corpus is indexed once.
- Only the longest matching suffix is used (no merging of shorter-suffix retrievals into the same draft).
"""
from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..errors import SpeculativeTypeError
from ..sampling import SamplingConfig
from ..tree import DraftTree
from .base import Drafter, check_budget
from .registry import register_drafter

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from ..verifiers import VerifyResult


class TrieNode:
    """One trie node: children by token id (in order of first appearance) and the n-gram's occurrence count."""

    __slots__ = ("children", "count")

    def __init__(self) -> None:
        self.children: dict[int, TrieNode] = {}
        self.count = 0


class NGramTrie:
    """Counts of every n-gram (n <= depth) of the sequences added (see the module docstring)."""

    def __init__(self, depth: int):
        self.depth = depth
        self.root = TrieNode()
        self.size = 0  # nodes, root excluded
        self._open: list[TrieNode] = []  # the current sequence's windows that are still shorter than `depth`

    def start(self) -> None:
        """Begin a new sequence (its first n-grams do not continue the previous sequence's last ones)."""
        self._open = []

    def append(self, token: int) -> None:
        """Append one token to the current sequence: every open window (and a new one) grows by this token."""
        grown = []
        for node in self._open + [self.root]:
            child = node.children.get(token)
            if child is None:
                child = node.children[token] = TrieNode()
                self.size += 1
            child.count += 1
            grown.append(child)
        self._open = grown[-(self.depth - 1):] if self.depth > 1 else []

    def add(self, tokens: Sequence[int]) -> None:
        """Index a whole sequence on its own."""
        self.start()
        for t in tokens:
            self.append(int(t))
        self.start()

    def find(self, ngram: Sequence[int]) -> TrieNode | None:
        node = self.root
        for t in ngram:
            node = node.children.get(int(t))
            if node is None:
                return None
        return node

    def count(self, ngram: Sequence[int]) -> int:
        node = self.find(ngram)
        return 0 if node is None else node.count

    def items(self) -> dict[tuple[int, ...], int]:
        """Every stored n-gram with its count (for inspection and tests)."""
        out: dict[tuple[int, ...], int] = {}
        stack: list[tuple[tuple[int, ...], TrieNode]] = [((), self.root)]
        while stack:
            key, node = stack.pop()
            for t, child in node.children.items():
                out[key + (t,)] = child.count
                stack.append((key + (t,), child))
        return out


def _check_int(value: Any, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


@register_drafter
@dataclass
class LookaheadDrafter(Drafter):
    name = "lookahead"
    deterministic = True

    ngram: int = 10
    max_match: int = 4
    min_match: int = 1
    corpus: Sequence[str | Sequence[int]] = ()
    reset_each_generation: bool = False
    key_cap: int = 8
    trie: NGramTrie | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        _check_int(self.ngram, "ngram (longest n-gram stored: matched suffix + continuation)", 2)
        _check_int(self.max_match, "max_match", 1)
        _check_int(self.min_match, "min_match", 1)
        _check_int(self.key_cap, "key_cap", 1)
        if self.min_match > self.max_match:
            raise ValueError(f"min_match ({self.min_match}) must be <= max_match ({self.max_match})")
        if self.max_match >= self.ngram:
            raise ValueError(f"max_match ({self.max_match}) must be < ngram ({self.ngram}) to leave room for a "
                             "continuation")
        if isinstance(self.corpus, (str, bytes)) or not isinstance(self.corpus, Sequence):
            raise SpeculativeTypeError("corpus must be a list of texts or of token id lists")
        for i, doc in enumerate(self.corpus):
            if not isinstance(doc, str) and (not isinstance(doc, Sequence) or isinstance(doc, bytes) or any(
                    isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in doc)):
                raise ValueError(f"corpus[{i}] must be a text or a list of token ids >= 0, got {doc!r:.60}")
        self._seq: list[int] = []

    # ---- indexing --------------------------------------------------------------------------------------------
    def _new_trie(self, tokenizer=None) -> NGramTrie:
        trie = NGramTrie(self.ngram)
        for doc in self.corpus:
            if isinstance(doc, str):
                if tokenizer is None:
                    raise ValueError("a corpus of texts needs the target LM in begin() (its tokenizer)")
                doc = tokenizer.encode(doc)
            trie.add(doc)
        return trie

    def _sync(self, context: Sequence[int]) -> None:
        """Index what `context` adds to the tracked sequence (a context that does not extend it starts a new one)."""
        if self.trie is None:
            self.trie = self._new_trie()
        context = [int(t) for t in context]
        n = len(self._seq)
        if context[:n] != self._seq:
            self.trie.start()
            self._seq, n = [], 0
        for t in context[n:]:
            self.trie.append(t)
        self._seq = context

    def begin(self, lm: LM | None, prompt_ids: Sequence[int], sampling: SamplingConfig,
              generator: torch.Generator | None = None) -> None:
        if self.trie is None or self.reset_each_generation:
            self.trie = self._new_trie(lm.tokenizer if lm is not None else None)
        self.trie.start()
        self._seq = []
        self._sync(prompt_ids)

    # ---- drafting --------------------------------------------------------------------------------------------
    def match(self, context: Sequence[int]) -> tuple[int, TrieNode | None]:
        """(n, node) for the longest context suffix of length n in [min_match, max_match] with a continuation."""
        for n in range(min(self.max_match, len(context)), self.min_match - 1, -1):
            node = self.trie.find(context[len(context) - n:])
            if node is not None and node.children:
                return n, node
        return 0, None

    def draft_key(self, context_ids: Sequence[int]) -> int:
        """The confidence signal of the cost-aware budget: 0 without a match, else the longest context suffix, of
        at least the matched length n and at most max(key_cap, n) tokens (and < ngram), that the trie holds with a
        continuation; longer suffixes than max_match are only looked up here, the draft still grows below the
        n-token match."""
        self._sync(context_ids)
        n, _ = self.match(self._seq)
        if n == 0:
            return 0
        for m in range(min(max(self.key_cap, n), self.ngram - 1, len(self._seq)), n, -1):
            node = self.trie.find(self._seq[len(self._seq) - m:])
            if node is not None and node.children:
                return m
        return n

    def propose(self, context_ids: Sequence[int], budget: int) -> DraftTree:
        check_budget(budget)
        self._sync(context_ids)
        _, start = self.match(self._seq)
        if start is None:
            return DraftTree.empty()
        tokens: list[int] = []
        parents: list[int] = []
        heap: list[tuple[int, int, int, int, TrieNode]] = []  # (-count, order, parent, token, node)
        order = 0
        for t, child in start.children.items():
            heap.append((-child.count, order, -1, t, child))
            order += 1
        heapq.heapify(heap)
        while heap and len(tokens) < budget:
            _, _, parent, t, node = heapq.heappop(heap)
            index = len(tokens)
            tokens.append(t)
            parents.append(parent)
            for ct, child in node.children.items():
                heapq.heappush(heap, (-child.count, order, index, ct, child))
                order += 1
        return DraftTree(tokens, parents)

    def update(self, tree: DraftTree, result: VerifyResult, logits: torch.Tensor) -> None:
        self._sync(self._seq + list(result.tokens))
