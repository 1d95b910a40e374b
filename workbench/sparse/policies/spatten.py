"""SpAtten: cascade token pruning by accumulated attention importance, and cascade head pruning.

Paper: "SpAtten: Efficient Sparse Attention Architecture with Cascade Token and Head Pruning" (Wang et al.,
2021). A token's importance is the attention probability it receives, summed over heads, query rows and all
layers and steps so far; each layer keeps its top-k tokens and prunes the rest, and a pruned token stays pruned
in every later layer and step ("cascade"). Likewise a head's importance is accumulated and the least important
heads are pruned for the rest of the sequence.

Cross-layer cascade with per-sequence shared state: every layer's `LayerState.memory` holds a reference to ONE
`Cascade` object per sequence (token importance [B, S], the pruned-token flags [B, S]). The layer that starts
a sequence (its memory has no cascade yet and the selector's newest cascade already serves that layer index)
creates it; the other layers of the same sequence adopt it when they first run (layers run in order within a
forward pass). So layer l sees the importance added by layers < l of this pass and all layers of earlier passes,
and only tokens no layer has pruned. The selector itself keeps just the hand-over pointer.

Here: token pruning is per sequence, shared by all KV heads (the paper prunes a token for every head); the
`recent` most recent positions are protected. With budgets that grow with depth (per-layer budgets) a deeper
layer gets only what earlier layers kept, so rows can be shorter than the budget (PAD-padded).
Head pruning (off by default): the paper ranks heads by the accumulated magnitude of their outputs, which a
selector cannot see (it gets queries, keys and probabilities, not values); the proxy here is the accumulated
L2 norm of each query head's probability row (1 for a one-hot head, 1/sqrt(S) for a uniform one), summed over
the KV head's group. The lowest `head_prune_fraction` of a layer's KV heads (at most all but one) are pruned
for good; the interface needs at least one row per KV head, so a pruned head reads only its newest token.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from workbench.sparse.ranking import indices_to_mask, mask_to_indices, top_k_lex
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


@dataclass
class Cascade:
    """One sequence's pruning state shared by all layers: token importance and pruned flags, [B, S] each."""

    importance: Tensor | None = None
    pruned: Tensor | None = None
    layers: set[int] = field(default_factory=set)

    def grow(self, batch: int, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        if self.importance is None:
            self.importance = torch.zeros(batch, 0, device=device)
            self.pruned = torch.zeros(batch, 0, dtype=torch.bool, device=device)
        extra = length - self.importance.shape[1]
        if extra > 0:
            self.importance = torch.cat([self.importance, self.importance.new_zeros(batch, extra)], 1)
            self.pruned = torch.cat([self.pruned, self.pruned.new_zeros(batch, extra)], 1)
        return self.importance, self.pruned


@register_selector("spatten")
@dataclass
class SpAtten(Selector):
    """Top accumulated-importance tokens among those no layer has pruned; optional cascade head pruning."""

    recent: int = 1
    head_prune_fraction: float = 0.0

    needs_observe = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.recent, bool) or not isinstance(self.recent, int) or self.recent < 0:
            raise ValueError(f"recent must be an int >= 0, got {self.recent!r}")
        if isinstance(self.head_prune_fraction, bool) or not 0 <= self.head_prune_fraction < 1:
            raise ValueError(f"head_prune_fraction must be in [0, 1), got {self.head_prune_fraction!r}")
        self._newest: Cascade | None = None

    def cascade(self, state: LayerState) -> Cascade:
        """This sequence's shared cascade (created by the first layer of a new sequence, adopted by the rest)."""
        c = state.memory.get("spatten.cascade")
        if c is None:
            if self._newest is None or state.layer_idx in self._newest.layers:
                self._newest = Cascade()
            c = state.memory["spatten.cascade"] = self._newest
            c.layers.add(state.layer_idx)
        return c

    def observe(self, state: LayerState, probs: Tensor) -> None:
        if probs.dim() != 4 or probs.shape[:2] != (state.batch, state.num_heads):
            raise ValueError(f"probs must be [B, H, T, S] = [{state.batch}, {state.num_heads}, T, S], "
                             f"got {list(probs.shape)}")
        imp, _ = self.cascade(state).grow(state.batch, probs.shape[-1], probs.device)
        imp[:, : probs.shape[-1]] += probs.float().sum((1, 2))
        norms = probs.float().norm(dim=-1).sum(2)  # [B, H]
        head = norms.reshape(state.batch, state.num_kv_heads, -1).sum(-1)
        state.memory["spatten.head_importance"] = state.memory.get("spatten.head_importance", 0) + head

    def select(self, state: LayerState) -> Tensor:
        s, dev = state.context_len, state.keys.device
        imp, pruned = self.cascade(state).grow(state.batch, s, dev)
        imp, pruned = imp[:, :s], pruned[:, :s]
        ks = self.k_per_head(state)
        pos = torch.arange(s, device=dev).view(1, 1, -1)
        recent = pos >= s - self.recent
        alive = (~pruned | recent.view(1, -1)).unsqueeze(1)
        chosen = top_k_lex(ks, state.kv_shape, alive, recent, imp.unsqueeze(1))
        mask = indices_to_mask(chosen, s) & alive  # never re-select a pruned token, even to fill the budget
        pruned |= ~mask.any(1) & ~recent.view(1, -1)  # a token no KV head kept is pruned for good
        return mask_to_indices(self._prune_heads(state, mask))

    def _prune_heads(self, state: LayerState, mask: Tensor) -> Tensor:
        n_prune = min(math.floor(self.head_prune_fraction * state.num_kv_heads), state.num_kv_heads - 1)
        head_pruned = state.memory.get("spatten.head_pruned")
        if head_pruned is None:
            head_pruned = torch.zeros(state.kv_shape[:2], dtype=torch.bool, device=mask.device)
        score = state.memory.get("spatten.head_importance")
        if n_prune > 0 and score is not None:
            extra = n_prune - int(head_pruned.sum(-1).min())
            if extra > 0:
                ranked = torch.where(head_pruned, torch.full_like(score, float("inf")), score)
                lowest = ranked.argsort(dim=-1, stable=True)[:, :extra]
                head_pruned = head_pruned.scatter(1, lowest, True)
        state.memory["spatten.head_pruned"] = head_pruned
        newest = torch.zeros_like(mask)
        newest[..., -1] = True
        return torch.where(head_pruned.unsqueeze(-1), newest, mask)

    def extra_bytes(self, state: LayerState, elem_bytes: int) -> int:
        # the shared importance (fp32) and pruned flag of every cached position
        return state.batch * state.context_len * (4 + 1)
