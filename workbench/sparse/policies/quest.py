"""Quest: per-page min/max key bounds give an upper bound of q.k per page; read the top pages.

Paper: "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference" (Tang et al., 2024). The cache is
split into pages of `page_size` tokens; each page stores the channel-wise min and max of its keys. For a query q
the page's criticality is sum_d max(q_d * max_d, q_d * min_d), an upper bound of q.k for every key in the page.
Only the top-scoring pages are read.

Here: the budget is in tokens. As in the paper's implementation (its page budget includes the last page), the
page holding the current token is always read; the rest of the budget is filled by whole pages of the others in
score order, the last chosen page cut (keeping its most recent tokens) to meet the budget exactly. The last,
partial page has bounds over its valid keys. Without the current page the model loses track of what it has just
written: in the passkey test it copied the key's digits but skipped or repeated some.
GQA: a KV head's page score is the max over its query heads of their bounds (still an upper bound for each).
As in the paper, the first `dense_layers` (default 2) layers read every token: their attention is diffuse and
a page top-k there degrades every later layer. Their reads are counted like any other selection.
GQA simplification: the paper's evaluation (an MHA model) picks pages per query head; here one selection serves
each KV head. Metadata read per step: min and max of every page (2 * pages * D values).
Two options beyond the paper (defaults off; measured by benchmarks/sparse_quest_diagnosis.py on the default model,
where the bound sits 11-19 logits above each page's true max and the attention-sink page is dropped in some heads):
`group_reduce="softmax_sum"` turns each query head's page bounds into a softmax over pages (scaled like attention
logits) and sums them over the group, so one head with loose, large bounds does not decide for the group (it runs
on the PyTorch reference `page_upper_bound`, not the kernel); `sink_pages=n` always reads the first n pages, like
the current one (StreamingLLM's attention sinks).
The bounds, the page scores and the top-k go through `workbench.kernels` (quest_page_bounds, quest_page_scores,
topk_select with ties to the more recent position): CUDA kernels on a GPU with CuPy, their PyTorch references,
which are the formulas below, elsewhere. The bounds are recomputed from the keys at every step (a deployment
keeps them as cache metadata, updated when a page fills).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.kernels import quest_page_bounds, quest_page_scores, topk_select
from workbench.sparse.ranking import all_positions, group_sum
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector

GROUP_REDUCTIONS = ("max", "softmax_sum")


def page_bounds(keys: Tensor, page_size: int) -> tuple[Tensor, Tensor]:
    """Channel-wise (min, max) of the keys of each page: two [B, H_kv, ceil(S / page_size), D] fp32 tensors."""
    lo, hi = quest_page_bounds(keys, page_size)
    return lo.float(), hi.float()


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
    """Top pages by the upper bound of q.k, filled up to the token budget; the first `dense_layers` read all."""

    page_size: int = 16
    dense_layers: int = 2
    group_reduce: str = "max"
    sink_pages: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.page_size, bool) or not isinstance(self.page_size, int) or self.page_size < 1:
            raise ValueError(f"page_size must be an int >= 1, got {self.page_size!r}")
        if isinstance(self.dense_layers, bool) or not isinstance(self.dense_layers, int) or self.dense_layers < 0:
            raise ValueError(f"dense_layers must be an int >= 0 (layers read in full), got {self.dense_layers!r}")
        if self.group_reduce not in GROUP_REDUCTIONS:
            raise ValueError(f"group_reduce must be one of {GROUP_REDUCTIONS}, got {self.group_reduce!r}")
        if isinstance(self.sink_pages, bool) or not isinstance(self.sink_pages, int) or self.sink_pages < 0:
            raise ValueError(f"sink_pages must be an int >= 0 (first pages always read), got {self.sink_pages!r}")

    def select(self, state: LayerState) -> Tensor:
        if state.layer_idx < self.dense_layers:
            return all_positions(state.batch, state.num_kv_heads, state.context_len, state.keys.device)
        common = torch.promote_types(state.query.dtype, state.keys.dtype)  # exact conversions only
        kmin, kmax = quest_page_bounds(state.keys.to(common), self.page_size)
        if self.group_reduce == "max":
            score = quest_page_scores(state.query.to(common), kmin, kmax)  # max over each KV head's group
        else:
            bound = page_upper_bound(state.query, kmin.float(), kmax.float()) * state.scale
            score = group_sum(bound.softmax(-1), state.num_kv_heads)
        pos = torch.arange(state.context_len, device=score.device)
        page = pos // self.page_size
        always = (page == page[-1]) | (page < self.sink_pages)  # the current page (and any sink pages) first
        token_score = score[..., page].masked_fill(always, float("inf"))
        # Ties (always within a page, often across pages) go to the more recent position.
        return topk_select(token_score, self.k_per_head(state), "higher", check_values=False)

    def extra_bytes(self, state: LayerState, elem_bytes: int) -> int:
        if state.layer_idx < self.dense_layers:
            return 0
        pages = math.ceil(state.context_len / self.page_size)
        return state.batch * state.num_kv_heads * pages * 2 * state.head_dim * elem_bytes
