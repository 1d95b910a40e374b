"""STAND: stochastic adaptive n-gram drafting (Song et al., "Accelerated Test-Time Scaling with Model-Free
Speculative Sampling", 2025, arXiv:2506.04708).

Logit-based n-gram memory. For every context n-gram (n = 1..max_ngram) the memory keeps the target's next-token
distribution seen after it, truncated to its k most probable tokens: the running mean of every observation
(count-weighted), cut back to the top k after each merge. Observations:
- every position the target scored in a verification pass (the root and every draft node, accepted or not; the
  decode loop hands the drafter the target logits [n + 1, V] of that pass): softmax of the logits at
  temperature 1, top k;
- the prompt: the decode loop does not hand drafters the prefill logits, so each prompt position contributes
  the token that actually followed as a one-hot observation (what a plain n-gram table stores). With prefill
  logits passed to `begin`, the prompt would get full distributions too (a change to decode.py, not made here).
Drafting at a node looks up the longest stored suffix of the node's context (prompt + output + its path).

Stochastic drafting. At a node with stored distribution m, the draft distribution is q = the SAME processing
the target gets (temperature / top-k / top-p of `speculative.sampling`) applied to log m, i.e. the target's
processed law restricted to the stored tokens, renormalised; its children are drawn from q without replacement
by Gumbel-top-k (drafters/gumbel.py) in draw order, and draft_probs[node] = q at the parent's context. Verify
with 'rsd' (recursive rejection sampling, lossless for siblings drawn without replacement). At temperature 0
the children are the stored tokens in decreasing probability (the zero-temperature limit of Gumbel-top-k: the
greedy verifier only accepts the argmax) and no draft_probs are attached.

Data-driven tree shape (our rule; the paper optimises a static tree offline from acceptance statistics): every
node has a slot, the rank path (r_1, ..., r_d) of draw ranks from the root. Per slot the drafter counts how
often the node's parent was reached by verification (tries) and how often the node was accepted (accepts); its
acceptance rate is the smoothed estimate (accepts + w * prior_r) / (tries + w) with prior_r = prior / (1 + r_d)
and w = `prior_weight`. A node's value is the product of the rates along its path (the estimated probability
that the verifier accepts it); the tree is grown best-first by value up to `budget` nodes (rank r + 1 of a node
is offered after rank r, a node's first child after the node itself, depth <= max_depth), so the tree grows
where acceptance has been high and shrinks where it has been low. Nodes whose context has no memory entry get
no children. Memory and statistics persist across generations unless `reset_each_generation`.
"""
from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..sampling import SamplingConfig, probs_from_logits
from ..tree import DraftTree
from .base import Drafter, check_budget
from .gumbel import gumbel_top_k
from .registry import register_drafter

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from ..verifiers import VerifyResult


class NGramMemory:
    """Top-k next-token distributions per context n-gram (see the module docstring)."""

    def __init__(self, max_ngram: int, k: int):
        self.max_ngram = max_ngram
        self.k = k
        self.table: dict[tuple[int, ...], tuple[int, dict[int, float]]] = {}  # key -> (count, {token: mean prob})

    def observe(self, context: Sequence[int], tokens: Sequence[int], probs: Sequence[float]) -> None:
        """Merge one observed distribution (tokens with their probabilities, others 0) after `context`."""
        new = dict(zip((int(t) for t in tokens), (float(p) for p in probs)))
        for n in range(1, min(self.max_ngram, len(context)) + 1):
            key = tuple(int(t) for t in context[len(context) - n:])
            count, old = self.table.get(key, (0, {}))
            merged = {t: (count * old.get(t, 0.0) + new.get(t, 0.0)) / (count + 1) for t in {**old, **new}}
            top = sorted(merged.items(), key=lambda item: (-item[1], item[0]))[: self.k]
            self.table[key] = (count + 1, dict(top))

    def lookup(self, context: Sequence[int]) -> tuple[tuple[int, ...], dict[int, float]] | None:
        """(key, {token: prob}) for the longest stored suffix of `context`, or None."""
        for n in range(min(self.max_ngram, len(context)), 0, -1):
            key = tuple(int(t) for t in context[len(context) - n:])
            if key in self.table:
                return key, self.table[key][1]
        return None


def _check_int(value: Any, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


@register_drafter
@dataclass
class StandDrafter(Drafter):
    name = "stand"
    deterministic = False

    max_ngram: int = 4
    k: int = 8
    max_depth: int = 8
    prior: float = 0.5
    prior_weight: float = 2.0
    reset_each_generation: bool = False
    memory: NGramMemory | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        _check_int(self.max_ngram, "max_ngram (n-gram size)", 1)
        _check_int(self.k, "k (tokens kept per n-gram)", 1)
        _check_int(self.max_depth, "max_depth", 1)
        for name, value, high in (("prior", self.prior, 1.0), ("prior_weight", self.prior_weight, float("inf"))):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= high \
                    or value == float("inf"):
                raise ValueError(f"{name} must be a number in (0, {high}], got {value!r}")
        self.stats: dict[tuple[int, ...], list[int]] = {}  # slot -> [tries, accepts]
        self.sampling = SamplingConfig(0.0)
        self.generator: torch.Generator | None = None
        self.vocab = 0
        self._context: list[int] = []
        self._slots: list[tuple[int, ...]] = []

    def begin(self, lm: LM | None, prompt_ids: Sequence[int], sampling: SamplingConfig,
              generator: torch.Generator | None = None) -> None:
        if lm is None:
            raise ValueError("stand needs the target LM in begin() (its vocabulary size)")
        self.vocab = int(lm.vocab_size)
        if self.memory is None or self.reset_each_generation:
            self.memory = NGramMemory(self.max_ngram, self.k)
            self.stats = {}
        self.sampling = sampling
        self.generator = generator
        prompt = [int(t) for t in prompt_ids]
        for j in range(1, len(prompt)):
            self.memory.observe(prompt[max(0, j - self.max_ngram):j], [prompt[j]], [1.0])

    # ---- the tree shape --------------------------------------------------------------------------------------
    def rate(self, slot: tuple[int, ...]) -> float:
        """Smoothed acceptance rate of a slot given its parent was reached (see the module docstring)."""
        tries, accepts = self.stats.get(slot, (0, 0))
        prior = self.prior / (1 + slot[-1])
        return (accepts + self.prior_weight * prior) / (tries + self.prior_weight)

    def _children(self, stored: dict[int, float]) -> tuple[list[int], torch.Tensor | None]:
        """(children in draw order, the draft distribution q they were drawn from or None at temperature 0)."""
        if self.sampling.greedy:
            return [t for t, _ in sorted(stored.items(), key=lambda item: (-item[1], item[0]))], None
        m = torch.zeros(self.vocab, dtype=torch.float64)
        ids = [t for t in stored if t < self.vocab]
        m[ids] = torch.tensor([stored[t] for t in ids], dtype=torch.float64)
        if not bool((m > 0).any()):
            return [], None
        q = probs_from_logits(m.log(), self.sampling.temperature, self.sampling.top_k, self.sampling.top_p)
        return gumbel_top_k(q, self.k, self.generator).tolist(), q

    def propose(self, context_ids: Sequence[int], budget: int) -> DraftTree:
        check_budget(budget)
        if self.memory is None:
            raise RuntimeError("call begin(lm, prompt_ids, sampling, generator) before propose()")
        context = [int(t) for t in context_ids]
        self._context = context
        tokens: list[int] = []
        parents: list[int] = []
        slots: list[tuple[int, ...]] = []
        values: list[float] = []
        paths: list[list[int]] = []
        rows: list[torch.Tensor | None] = []
        drawn: dict[int, tuple[list[int], torch.Tensor | None]] = {}
        heap: list[tuple[float, int, int, int]] = []  # (-value, order, parent node, rank)
        order = 0

        def offer(parent: int, rank: int) -> None:
            nonlocal order
            if rank < len(drawn[parent][0]):
                slot = (slots[parent] if parent >= 0 else ()) + (rank,)
                value = (values[parent] if parent >= 0 else 1.0) * self.rate(slot)
                heapq.heappush(heap, (-value, order, parent, rank))
                order += 1

        def expand(node: int) -> None:
            path = paths[node] if node >= 0 else []
            found = self.memory.lookup((context + path)[-self.max_ngram:])
            if found is not None:
                drawn[node] = self._children(found[1])
                offer(node, 0)

        expand(-1)
        while heap and len(tokens) < budget:
            neg, _, parent, rank = heapq.heappop(heap)
            children, q = drawn[parent]
            node = len(tokens)
            tokens.append(children[rank])
            parents.append(parent)
            slots.append((slots[parent] if parent >= 0 else ()) + (rank,))
            values.append(-neg)
            paths.append((paths[parent] if parent >= 0 else []) + [children[rank]])
            rows.append(q)
            offer(parent, rank + 1)
            if len(paths[node]) < self.max_depth:
                expand(node)
        self._slots = slots
        probs = None if not tokens or rows[0] is None else torch.stack(rows)
        return DraftTree(tokens, parents, probs)

    def update(self, tree: DraftTree, result: VerifyResult, logits: torch.Tensor) -> None:
        if self.memory is None:
            return
        n = len(tree)
        if logits.ndim != 2 or logits.shape[0] != n + 1:
            raise ValueError(f"logits must have shape [n + 1, V] = [{n + 1}, V], got {tuple(logits.shape)}")
        top = torch.topk(torch.softmax(logits.detach().to("cpu", torch.float32), dim=-1), min(self.k, logits.shape[-1]))
        ids, probs = top.indices.tolist(), top.values.tolist()
        self.memory.observe(self._context, ids[0], probs[0])
        for node in range(n):
            path = [tree.token(i) for i in tree.path(node)]
            self.memory.observe((self._context + path)[-self.max_ngram:], ids[node + 1], probs[node + 1])
        if len(self._slots) != n:
            return  # not our tree (e.g. update called without propose): no shape statistics
        accepted = set(result.accepted_nodes)
        for node in range(n):
            parent = tree.parent(node)
            if parent < 0 or parent in accepted:
                entry = self.stats.setdefault(self._slots[node], [0, 0])
                entry[0] += 1
                entry[1] += node in accepted
