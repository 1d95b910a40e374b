"""Toy target/draft models and drafting schemes for the exact losslessness tests of the verifiers.

A toy model gives next-token logits for every context (a tuple of token ids), seeded per context; the draft model
is the target's logits plus seeded noise, so drafts are good but imperfect. Drafting schemes are programs over a
RandomSource, so `enumerate_outcomes` lists every possible draft tree with its exact probability.
"""
from __future__ import annotations

from itertools import product

import numpy as np
import torch

from workbench.speculative import DraftTree, probs_from_logits
from workbench.speculative.rng import RandomSource


class ToyModel:
    """Seeded random next-token logits per context; `base` + `noise` makes a correlated draft model."""

    def __init__(self, vocab: int, seed: int, scale: float = 1.5, base: ToyModel | None = None,
                 noise: float = 1.0, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None):
        self.vocab, self.seed, self.scale, self.base, self.noise = vocab, seed, scale, base, noise
        self.settings = (temperature, top_k, top_p)
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}

    def logits(self, context: tuple[int, ...]) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, len(context), *context])
        if self.base is None:
            return torch.tensor(rng.normal(size=self.vocab) * self.scale, dtype=torch.float64)
        return self.base.logits(context) + torch.tensor(rng.normal(size=self.vocab) * self.noise)

    def probs(self, context: tuple[int, ...]) -> torch.Tensor:
        """The processed (temperature/top-k/top-p) distribution at `context`, float64 [V]."""
        context = tuple(context)
        if context not in self._cache:
            self._cache[context] = probs_from_logits(self.logits(context), *self.settings)
        return self._cache[context]


# ---- drafting schemes (programs over a RandomSource) -----------------------------------------------------------
# A tree shape is a list of child shapes: [[[]], []] = the root has two children, the first of which has one child.

def _build(nodes: list[tuple[int, int, torch.Tensor | None]]) -> DraftTree:
    tokens = [t for t, _, _ in nodes]
    parents = [p for _, p, _ in nodes]
    rows = [r for _, _, r in nodes]
    probs = torch.stack(rows) if rows and rows[0] is not None else None
    return DraftTree(tokens, parents, probs)


def draft_without_replacement(draft: ToyModel, prefix: tuple[int, ...], shape: list, rng: RandomSource) -> DraftTree:
    """Children of each node drawn from q at its context without replacement (sequentially renormalised),
    as RSD's Gumbel-top-k drafting does (same distribution). Fewer children if q's support is smaller."""
    nodes: list[tuple[int, int, torch.Tensor]] = []

    def grow(context: tuple[int, ...], parent: int, children: list) -> None:
        q = draft.probs(context)
        remaining = q.clone()
        for sub in children:
            if float(remaining.sum()) <= 0:
                return
            token = rng.categorical(remaining)
            remaining[token] = 0
            nodes.append((token, parent, q))
            grow(context + (token,), len(nodes) - 1, sub)

    grow(tuple(prefix), -1, shape)
    return _build(nodes)


def draft_iid_sequences(draft: ToyModel, prefix: tuple[int, ...], k: int, depth: int, rng: RandomSource) -> DraftTree:
    """k independent draft sequences of `depth` tokens each, kept as k separate chains (SpecTr)."""
    nodes: list[tuple[int, int, torch.Tensor]] = []
    for _ in range(k):
        context, parent = tuple(prefix), -1
        for _ in range(depth):
            q = draft.probs(context)
            token = rng.categorical(q)
            nodes.append((token, parent, q))
            parent = len(nodes) - 1
            context = context + (token,)
    return _build(nodes)


def draft_topk_tree(draft: ToyModel, prefix: tuple[int, ...], shape: list) -> DraftTree:
    """A deterministic tree: the children of each node are the most probable draft tokens at its context."""
    nodes: list[tuple[int, int, None]] = []

    def grow(context: tuple[int, ...], parent: int, children: list) -> None:
        q = draft.probs(context)
        order = torch.argsort(q, descending=True, stable=True).tolist()
        for token, sub in zip(order, children):
            nodes.append((token, parent, None))
            grow(context + (token,), len(nodes) - 1, sub)

    grow(tuple(prefix), -1, shape)
    return _build(nodes)


def target_rows(target: ToyModel, prefix: tuple[int, ...], tree: DraftTree) -> torch.Tensor:
    """target_probs [n + 1, V]: at the root context, then after every node."""
    rows = [target.probs(tuple(prefix))]
    for i in range(len(tree)):
        rows.append(target.probs(tuple(prefix) + tuple(tree.token(j) for j in tree.path(i))))
    return torch.stack(rows)


# ---- the losslessness criterion -------------------------------------------------------------------------------

def target_joint(target: ToyModel, prefix: tuple[int, ...], length: int) -> np.ndarray:
    """P_target(x_1..x_length | prefix) as an array [V] * length (exact product of conditionals)."""
    p = target.probs(tuple(prefix)).numpy()
    if length == 1:
        return p.copy()
    out = np.zeros((target.vocab,) * length)
    for x in range(target.vocab):
        if p[x] > 0:
            out[x] = p[x] * target_joint(target, tuple(prefix) + (x,), length - 1)
    return out


def completed_joint(emitted: dict[tuple[int, ...], float], target: ToyModel, prefix: tuple[int, ...],
                    length: int) -> np.ndarray:
    """Joint law of the first `length` tokens when a step emits `emitted` and, if it emitted fewer, decoding
    continues from the target itself. Lossless verification means this equals target_joint for every length."""
    out = np.zeros((target.vocab,) * length)
    for seq, prob in emitted.items():
        if len(seq) >= length:
            out[seq[:length]] += prob
        else:
            out[seq] += prob * target_joint(target, tuple(prefix) + seq, length - len(seq))
    return out


def all_sequences(vocab: int, length: int):
    return product(range(vocab), repeat=length)
