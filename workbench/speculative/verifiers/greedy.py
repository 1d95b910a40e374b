"""Greedy verification: follow the target's argmax through the tree (deterministic; any drafts).

At each node the target's most probable token (the first on ties) is compared with the children; a child with
that token is accepted and the walk continues there, otherwise the argmax is emitted as the bonus token. The
emitted tokens are exactly those of greedy autoregressive decoding (Stern et al., "Blockwise Parallel Decoding
for Deep Autoregressive Models", 2018; the greedy case of Leviathan et al. 2023). Pass one-hot target
distributions (temperature 0 in `sampling.probs_from_logits`) so the argmax is that of the logits.

`verify_argmax(tree, best)` is the same walk from the per-row argmax ids of the target LOGITS (best[0] at the
root, best[i + 1] after node i): the decode loop's fast path, which skips building one-hot float64 distributions
over the vocabulary (the argmax of the logits is the argmax of the one-hot, first index on ties).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..rng import RandomSource
from ..tree import DraftTree
from .base import Verifier, VerifyResult
from .registry import register_verifier


@register_verifier
@dataclass
class GreedyVerifier(Verifier):
    name = "greedy"
    needs_draft_probs = False

    def select(self, p: torch.Tensor, q: torch.Tensor | None, candidates: list[int],
               rng: RandomSource) -> tuple[int | None, int]:
        best = int(p.argmax())
        if best in candidates:
            return candidates.index(best), best
        return None, best

    def verify_argmax(self, tree: DraftTree, best: list[int]) -> VerifyResult:
        """`verify` from the target's argmax ids [n + 1] (see the module docstring): same walk, same result."""
        if not isinstance(tree, DraftTree):
            raise ValueError(f"tree must be a DraftTree, got {type(tree).__name__}")
        if len(best) != len(tree) + 1:
            raise ValueError(f"best must hold n + 1 = {len(tree) + 1} argmax ids (root, then one per node), "
                             f"got {len(best)}")
        frontier, last = [-1], -1
        while True:
            token = int(best[last + 1])
            match = [c for f in frontier for c in tree.children(f) if tree.token(c) == token]
            if not match:
                path = tree.path(last)
                return VerifyResult(path, [tree.token(i) for i in path], token)
            last, frontier = match[0], match
