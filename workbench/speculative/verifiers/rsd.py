"""Recursive rejection sampling over siblings drafted WITHOUT replacement (Jeon et al., "Recursive Speculative
Decoding: Accelerating LLM Inference via Sampling Without Replacement", 2024).

The children x_1..x_k of a node are drawn from q without replacement (e.g. Gumbel-top-k), in order. Try them in
order: accept x_j with probability min(1, p_j(x_j) / q_j(x_j)); on rejection set p_{j+1} = norm(max(0, p_j - q_j))
and q_{j+1} = q_j with x_j removed, renormalised (the distribution the next sibling was actually drawn from).
If every sibling is rejected the step emits a token from p_{k+1}. Each trial is a speculative-sampling step from
q_j towards p_j, so the emitted token is distributed as p_1 = p.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..rng import RandomSource
from ..tree import DraftTree
from .base import Verifier
from .registry import register_verifier


@register_verifier
@dataclass
class RecursiveRejectionVerifier(Verifier):
    name = "rsd"
    needs_draft_probs = True

    def check_tree(self, tree: DraftTree) -> None:
        for node in [-1] + list(range(len(tree))):
            tokens = [tree.token(c) for c in tree.children(node)]
            if len(set(tokens)) != len(tokens):
                raise ValueError(f"verifier 'rsd' needs siblings drafted without replacement, but the children of "
                                 f"node {node} repeat a token: {tokens}")

    def select(self, p: torch.Tensor, q: torch.Tensor | None, candidates: list[int],
               rng: RandomSource) -> tuple[int | None, int]:
        for j, x in enumerate(candidates):
            if rng.bernoulli(float(p[x] / q[x])):
                return j, x
            residual = (p - q).clamp_min(0)
            if float(residual.sum()) > 0:  # zero only when p == q, where rejection has probability 0
                p = residual / residual.sum()
            if j + 1 < len(candidates):
                q = q.clone()
                q[x] = 0
                q = q / q.sum()
        return None, rng.categorical(p)
