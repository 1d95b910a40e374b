"""H2O: heavy hitters by accumulated attention + a recent window, evicting the rest for good.

Paper: "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models" (Zhang et al.,
2023). A few tokens collect most of the attention over time ("heavy hitters"). Every step each cached token's
attention probabilities are summed into a running score; the cache keeps the most recent tokens plus the tokens
with the largest running score, and greedily evicts the rest (an evicted token never comes back).

Here: the running score starts with the dense prefill attention (column sums over the prompt's queries) and then
adds each decode step's probabilities (zero for tokens not read). GQA: a KV head's score is the sum over its query
heads. Budget split: heavy = floor(budget * (1 - recent_fraction)), recent = the rest (the paper uses halves).
In masked mode eviction is reproduced by never re-selecting a position once it was left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.sparse.ranking import group_sum, indices_to_mask, top_k_lex
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


@register_selector("h2o")
@dataclass
class H2O(Selector):
    """Recent window + top accumulated-attention tokens among those never evicted."""

    recent_fraction: float = 0.5

    needs_observe = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.recent_fraction, bool) or not 0 <= self.recent_fraction <= 1:
            raise ValueError(f"recent_fraction must be in [0, 1], got {self.recent_fraction!r}")

    def token_scores(self, state: LayerState, probs: Tensor) -> Tensor:
        """Per query head and query row, what each token adds to its running score: [B, H, T, S']."""
        return probs.float()

    def observe(self, state: LayerState, probs: Tensor) -> None:
        if probs.dim() != 4 or probs.shape[:2] != (state.batch, state.num_heads):
            raise ValueError(f"probs must be [B, H, T, S] = [{state.batch}, {state.num_heads}, T, S], got {list(probs.shape)}")
        add = group_sum(self.token_scores(state, probs).sum(2), state.num_kv_heads)
        acc = _grow(state.memory.get(self._key("score")), add.shape[-1], 0.0, add)
        acc[..., : add.shape[-1]] += add
        state.memory[self._key("score")] = acc

    def select(self, state: LayerState) -> Tensor:
        s = state.context_len
        ref = state.keys.new_zeros(state.kv_shape, dtype=torch.float32)
        score = _grow(state.memory.get(self._key("score")), s, 0.0, ref)[..., :s]
        evicted = _grow(state.memory.get(self._key("evicted")), s, False, ref.bool())[..., :s]
        ks = self.k_per_head(state)
        recent = torch.tensor([k - int(k * (1 - self.recent_fraction)) for k in ks], device=ref.device)
        pos = torch.arange(s, device=ref.device).view(1, 1, -1)
        chosen = top_k_lex(ks, state.kv_shape, ~evicted, pos >= s - recent.view(1, -1, 1), score)
        state.memory[self._key("evicted")] = evicted | ~indices_to_mask(chosen, s)
        return chosen

    def extra_bytes(self, state: LayerState, elem_bytes: int) -> int:
        # the running score (fp32) and the eviction flag of every cached position
        return state.batch * state.num_kv_heads * state.context_len * (4 + 1)

    def _key(self, what: str) -> str:
        return f"{self.name}.{what}"


def _grow(t: Tensor | None, length: int, fill, like: Tensor) -> Tensor:
    """Extend a per-position tensor [B, H_kv, n] with `fill` to at least `length` positions."""
    shape = (*like.shape[:-1], length)
    if t is None:
        return torch.full(shape, fill, dtype=like.dtype, device=like.device)
    if t.shape[-1] >= length:
        return t
    pad = torch.full((*t.shape[:-1], length - t.shape[-1]), fill, dtype=t.dtype, device=t.device)
    return torch.cat([t, pad], dim=-1)
