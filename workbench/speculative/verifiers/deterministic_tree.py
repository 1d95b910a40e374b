"""Lossless sampling verification of a tree of DETERMINISTIC drafts (n-gram lookup, trie retrieval, greedy
top-k expansion): multi-step speculative sampling with point-mass proposals.

Rule (SpecInfer's multi-step speculative sampling, Miao et al., "SpecInfer: Accelerating Large Language Model
Serving with Tree-based Speculative Inference and Verification", 2024, with each proposal q_j = one-hot(x_j);
the same rule as the sampling verification of Lookahead decoding, Fu et al., "Break the Sequential Dependency of
LLM Inference Using Lookahead Decoding", 2024): at a node with target p, try the children x_1..x_k in order;
accept x_j with probability p_j(x_j), where p_1 = p and p_{j+1} is p_j with x_j set to 0 and renormalised, i.e.
with probability p(x_j) / (1 - p(x_1) - ... - p(x_{j-1})); if all are rejected, emit a token from p with every
tried token removed, renormalised. The tree must depend only on the context, not on the target's random choices.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..rng import RandomSource
from .base import Verifier
from .registry import register_verifier


@register_verifier
@dataclass
class DeterministicTreeVerifier(Verifier):
    name = "deterministic_tree"
    needs_draft_probs = False

    def select(self, p: torch.Tensor, q: torch.Tensor | None, candidates: list[int],
               rng: RandomSource) -> tuple[int | None, int]:
        remaining = p.clone()
        for j, x in enumerate(candidates):
            mass = float(remaining.sum())
            if mass > 0 and rng.bernoulli(float(remaining[x]) / mass):
                return j, x
            remaining[x] = 0
        return None, rng.categorical(remaining if float(remaining.sum()) > 0 else p)
