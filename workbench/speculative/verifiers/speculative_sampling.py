"""Speculative sampling on a chain (Leviathan, Kalman & Matias, "Fast Inference from Transformers via Speculative
Decoding", 2023; Chen et al., "Accelerating Large Language Model Decoding with Speculative Sampling", 2023).

Draft token x ~ q is accepted with probability min(1, p(x) / q(x)); on rejection the step emits a token from the
residual norm(max(0, p - q)) and stops; after a fully accepted chain the bonus token is drawn from p at the leaf.
Then P(emit y) = min(p(y), q(y)) + (1 - sum_x min(p, q)) * norm(max(0, p - q))(y) = p(y) exactly.
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
class SpeculativeSamplingVerifier(Verifier):
    name = "speculative_sampling"
    needs_draft_probs = True

    def check_tree(self, tree: DraftTree) -> None:
        for node in [-1] + list(range(len(tree))):
            if len(tree.children(node)) > 1:
                raise ValueError(f"verifier 'speculative_sampling' verifies a single chain, but node {node} has "
                                 f"{len(tree.children(node))} children; use 'rsd' (siblings drafted without "
                                 "replacement) or 'spectr' (i.i.d. drafts) for trees")

    def select(self, p: torch.Tensor, q: torch.Tensor | None, candidates: list[int],
               rng: RandomSource) -> tuple[int | None, int]:
        if not candidates:
            return None, rng.categorical(p)
        x = candidates[0]
        if rng.bernoulli(float(p[x] / q[x])):
            return 0, x
        residual = (p - q).clamp_min(0)
        return None, rng.categorical(residual if float(residual.sum()) > 0 else p)
