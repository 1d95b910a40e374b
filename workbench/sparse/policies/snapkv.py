"""SnapKV: the prompt's last queries vote, once at prefill, for the prompt tokens worth keeping.

Paper: "SnapKV: LLM Knows What You are Looking for Before Generation" (Li et al., 2024). The attention of an
observation window (the last `window` prompt queries) over the earlier prompt tokens predicts what generation
will attend to. Votes = attention summed over the window's queries, smoothed by a 1-D max-pool (kernel
`kernel_size`) so neighbours of important tokens stay too; keep the top-voted prefix tokens plus the window.

Here: votes are computed once, at the first decode step, from `LayerState.prefill_queries`; generated tokens are
always kept (SnapKV compresses only the prompt). With a fixed token budget the generated tokens therefore push
out the lowest-voted prompt tokens, and once they fill the budget the newest ones win. GQA: a KV head's votes are
the sum over its query heads, pooled after the sum.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.sparse.ranking import group_sum, top_k_lex
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


@register_selector("snapkv")
@dataclass
class SnapKV(Selector):
    """Observation-window voting with max-pooling, computed at prefill; window and generated tokens kept."""

    window: int = 32
    kernel_size: int = 7

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be an int >= 1, got {self.window!r}")
        if isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, int) or self.kernel_size < 1 \
                or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd int >= 1, got {self.kernel_size!r}")

    def votes(self, state: LayerState) -> Tensor:
        """Pooled votes [B, H_kv, P] of the prompt positions (the window's own entries are unused)."""
        pq = state.prefill_queries
        if pq is None:
            raise ValueError("snapkv needs the prompt's queries: pass LayerState(prefill_queries=[B, H, P, D])")
        p = pq.shape[2]
        w = min(self.window, p)
        q = pq[:, :, p - w:].float().reshape(state.batch, state.num_kv_heads, state.group_size, w, state.head_dim)
        logits = torch.einsum("bgqwd,bgsd->bgqws", q, state.keys[:, :, :p].float()) * state.scale
        qpos = torch.arange(p - w, p, device=logits.device).view(-1, 1)
        causal = torch.arange(p, device=logits.device).view(1, -1) <= qpos
        probs = logits.masked_fill(~causal, float("-inf")).softmax(-1)
        votes = group_sum(probs.sum(3).reshape(state.batch, state.num_heads, p), state.num_kv_heads)
        pooled = F.max_pool1d(votes.reshape(-1, 1, p), self.kernel_size, stride=1, padding=self.kernel_size // 2)
        return pooled.reshape(state.batch, state.num_kv_heads, p)

    def prepare(self, state: LayerState) -> None:
        """The prefill-time (budget-free) part: the pooled votes, kept in `state.memory`."""
        if "snapkv.votes" not in state.memory:
            state.memory["snapkv.votes"] = self.votes(state)

    def select(self, state: LayerState) -> Tensor:
        self.prepare(state)
        votes = state.memory["snapkv.votes"]
        p, s = votes.shape[-1], state.context_len
        w = min(self.window, p)
        pos = torch.arange(s, device=votes.device).view(1, 1, -1)
        forced = pos >= p - w  # the observation window and every generated token
        padded = torch.cat([votes, votes.new_zeros(*votes.shape[:-1], s - p)], -1)
        return top_k_lex(self.k_per_head(state), state.kv_shape, forced, torch.where(forced, pos.float(), padded))
