"""TokenSelect: per-head softmax soft-voting over q.k, top-k tokens, a selection cache for similar queries.

Paper: "TokenSelect: Efficient Long-Context Inference and Length Extrapolation for LLMs via Dynamic Token-Level
KV Cache Selection" (Wu et al., 2025). Each head's q.k logits are turned into a softmax (so no single head with
large logits dominates) and the heads' probabilities are summed ("soft vote"); the top-k tokens are read. Since
consecutive decode queries are often nearly parallel, the selection is reused while the cosine similarity of the
current and previous query stays at or above `threshold`, which skips the scoring pass.

Here: the first `sinks` and the last `recent` positions are always read (the paper likewise keeps initial and
local tokens); the voted part fills the rest of the budget. Voting is per KV head over its query heads
(`vote_over="group"`) or over all heads of the layer (`"layer"`, one vote shared by every KV head, as in the
paper's token-level selection). The similarity is taken per (batch, KV head) over the group's concatenated query
vectors, against the previous step's query. A reused head keeps its voted part and re-derives sinks/recent;
the positions that left the recent window (or arrived, with recent=0) since the votes were taken had no vote, so
they take the places of the lowest-voted cached tokens (without this, a reused selection with recent=1 never
reads the previous token, a large perplexity loss on real text). The paper keeps a large local window, where
the difference is small; this hand-over is our addition.
The group votes and the top-k go through `workbench.kernels` (tokenselect_votes, topk_select with ties to the
lower position): CUDA kernels on a GPU with CuPy, their PyTorch references elsewhere; "layer" voting sums the
per-query-head softmax here.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.kernels import tokenselect_votes, topk_select
from workbench.sparse.ranking import (
    PAD,
    all_positions,
    indices_to_mask,
    mask_to_indices,
)
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


@register_selector("tokenselect")
@dataclass
class TokenSelect(Selector):
    """Soft-voted top-k with sinks and a recent window; selection reused while queries stay similar."""

    threshold: float = 0.9
    sinks: int = 0
    recent: int = 1
    vote_over: str = "group"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.threshold, bool) or not -1 <= self.threshold <= 1:
            raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {self.threshold!r}")
        for name in ("sinks", "recent"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        if self.vote_over not in ("group", "layer"):
            raise ValueError(f"vote_over must be 'group' or 'layer', got {self.vote_over!r}")

    def votes(self, state: LayerState) -> Tensor:
        """Soft votes [B, H_kv, S]: per query head softmax of q.k, summed over the group (or the layer)."""
        if self.vote_over == "layer":
            return state.logits().softmax(-1).sum(1, keepdim=True).expand(state.kv_shape)
        return tokenselect_votes(state.query, state.keys, state.scale)

    def select(self, state: LayerState) -> Tensor:
        mem, s = state.memory, state.context_len
        ks = self.k_per_head(state)
        q = state.query.float().reshape(state.batch, state.num_kv_heads, -1)
        prev_q, prev_s = mem.get("tokenselect.query"), mem.get("tokenselect.context")
        mem["tokenselect.query"], mem["tokenselect.context"] = q, s
        if min(ks) >= s:  # everything fits: no voting, and no cache to reuse next step
            mem.pop("tokenselect.keep", None)
            mem["tokenselect.reused"] = torch.zeros(state.kv_shape[:2], dtype=torch.bool, device=q.device)
            mem["tokenselect.scored"] = torch.zeros(state.kv_shape[:2], dtype=torch.bool, device=q.device)
            return all_positions(state.batch, state.num_kv_heads, s, state.keys.device)

        sinks = [min(self.sinks, k) for k in ks]
        recent = [min(self.recent, k - n) for k, n in zip(ks, sinks)]
        voted_k = [k - n - r for k, n, r in zip(ks, sinks, recent)]
        pos = torch.arange(s, device=q.device).view(1, 1, -1)
        n_sink = torch.tensor(sinks, device=q.device).view(1, -1, 1)
        n_recent = torch.tensor(recent, device=q.device).view(1, -1, 1)
        fixed = (pos < n_sink) | (pos >= s - n_recent)

        # keep-scores of the cached voted tokens over positions (-inf elsewhere): votes, +inf for handed-over ones
        cached = mem.get("tokenselect.keep")
        reuse = torch.zeros(state.kv_shape[:2], dtype=torch.bool, device=q.device)
        if cached is not None and prev_s == s - 1 and mem.get("tokenselect.k") == ks:
            reuse = torch.nn.functional.cosine_similarity(q, prev_q, dim=-1) >= self.threshold
        if max(voted_k) > 0:
            if reuse.any():
                rolled = torch.cat([cached, cached.new_full((*cached.shape[:2], 1), float("-inf"))], -1)
                # positions before the recent window that were inside it (or not yet cached) at the last vote
                handed_over = (pos >= prev_s - n_recent) & ~fixed
                rolled = rolled.masked_fill(handed_over, float("inf"))
            if bool(reuse.all()):
                score = rolled
            else:
                # votes are >= 0, so the fixed positions (-inf) rank last: the top voted_k are all free positions
                score = self.votes(state).masked_fill(fixed, float("-inf"))
                if reuse.any():
                    score = torch.where(reuse.unsqueeze(-1), rolled, score)
            score = score.masked_fill(fixed, float("-inf"))
            voted = topk_select(score, voted_k, check_values=False)
            keep = torch.full_like(score, float("-inf"))
            keep.scatter_(-1, voted.clamp(min=0), score.gather(-1, voted.clamp(min=0)))
            mem["tokenselect.keep"] = keep.masked_fill(~indices_to_mask(voted, s), float("-inf"))
        else:
            voted = torch.full((*state.kv_shape[:2], 0), PAD, dtype=torch.long, device=q.device)
            mem.pop("tokenselect.keep", None)
        mem["tokenselect.k"], mem["tokenselect.reused"] = ks, reuse
        mem["tokenselect.scored"] = ~reuse if max(voted_k) > 0 else torch.zeros_like(reuse)
        return mask_to_indices(indices_to_mask(voted, s) | fixed.expand(state.kv_shape))

    def extra_bytes(self, state: LayerState, elem_bytes: int) -> int:
        flags = state.memory.get("tokenselect.scored")
        scored = int(flags.sum().item()) if flags is not None else state.batch * state.num_kv_heads
        # a re-voting head reads every key of its cache; with vote_over="layer" every head's keys are read
        if self.vote_over == "layer" and scored:
            scored = state.batch * state.num_kv_heads
        return scored * state.context_len * state.head_dim * elem_bytes
