"""Quest: per-page min/max key bounds give an upper bound of q.k per page; read the top pages.

Paper: "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference" (Tang et al., 2024). The cache is
split into pages of `page_size` tokens; each page stores the channel-wise min and max of its keys. For a query q
the page's criticality is sum_d max(q_d * max_d, q_d * min_d), an upper bound of q.k for every key in the page.
Only the top-scoring pages are read.

Here: the budget is in tokens and is filled by whole pages in score order; the last chosen page is cut (keeping
its most recent tokens) to meet the budget exactly. The last, partial page has bounds over its valid keys.
GQA: a KV head's page score is the max over its query heads of their bounds (still an upper bound for each).
Simplification: the paper leaves the first two layers dense; here every layer follows the policy (use a
per-layer budget to exempt layers). Metadata read per step: min and max of every page (2 * pages * D values).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.sparse.ranking import group_max, top_k_lex
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


def page_bounds(keys: Tensor, page_size: int) -> tuple[Tensor, Tensor]:
    """Channel-wise (min, max) of the keys of each page: two [B, H_kv, ceil(S / page_size), D] tensors."""
    b, h_kv, s, d = keys.shape
    pages = math.ceil(s / page_size)
    pad = pages * page_size - s
    k = keys.float()
    lo = torch.cat([k, k.new_full((b, h_kv, pad, d), float("inf"))], 2).reshape(b, h_kv, pages, page_size, d)
    hi = torch.cat([k, k.new_full((b, h_kv, pad, d), float("-inf"))], 2).reshape(b, h_kv, pages, page_size, d)
    return lo.amin(3), hi.amax(3)


def page_upper_bound(query: Tensor, kmin: Tensor, kmax: Tensor) -> Tensor:
    """Upper bound of q.k (unscaled) over each page, per query head: [B, H, pages]. query: [B, H, D]."""
    b, h, d = query.shape
    h_kv = kmin.shape[1]
    q = query.float().reshape(b, h_kv, h // h_kv, 1, d)
    bound = torch.maximum(q * kmax.unsqueeze(2), q * kmin.unsqueeze(2)).sum(-1)
    return bound.reshape(b, h, -1)


@register_selector("quest")
@dataclass
class Quest(Selector):
    """Top pages by the upper bound of q.k, filled up to the token budget."""

    page_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.page_size, bool) or not isinstance(self.page_size, int) or self.page_size < 1:
            raise ValueError(f"page_size must be an int >= 1, got {self.page_size!r}")

    def select(self, state: LayerState) -> Tensor:
        kmin, kmax = page_bounds(state.keys, self.page_size)
        score = group_max(page_upper_bound(state.query, kmin, kmax), state.num_kv_heads)
        pos = torch.arange(state.context_len, device=score.device)
        token_score = score[..., pos // self.page_size]
        return top_k_lex(self.k_per_head(state), state.kv_shape, token_score, pos.view(1, 1, -1))

    def extra_bytes(self, state: LayerState, elem_bytes: int) -> int:
        pages = math.ceil(state.context_len / self.page_size)
        return state.batch * state.num_kv_heads * pages * 2 * state.head_dim * elem_bytes
