"""Greedy verification: follow the target's argmax through the tree (deterministic; any drafts).

At each node the target's most probable token (the first on ties) is compared with the children; a child with
that token is accepted and the walk continues there, otherwise the argmax is emitted as the bonus token. The
emitted tokens are exactly those of greedy autoregressive decoding (Stern et al., "Blockwise Parallel Decoding
for Deep Autoregressive Models", 2018; the greedy case of Leviathan et al. 2023). Pass one-hot target
distributions (temperature 0 in `sampling.probs_from_logits`) so the argmax is that of the logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..rng import RandomSource
from .base import Verifier
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
