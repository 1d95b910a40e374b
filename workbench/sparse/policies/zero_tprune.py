"""Zero-TPrune: prompt tokens ranked by weighted PageRank on the prefill attention graph; the top ones are kept.

Paper: "Zero-TPrune: Zero-Shot Token Pruning through Leveraging of the Attention Graph in Pre-Trained
Transformers" (Wang et al., 2024). The attention matrix is a graph whose edge i -> j carries the weight A[i, j];
a token is important when important tokens attend to it, s = A^T s (weighted PageRank), found by power
iteration per head and averaged over heads (the "I-stage"); the least important tokens are pruned.

Here: the graph is each query head's causal prefill attention over the prompt (computed once, at the first
decode step, from `LayerState.prefill_queries`). A causal graph drains all rank into token 0 (row 0 attends
only to itself), so the iteration is damped as in PageRank: s = (1 - d) / P + d * A^T s, run to convergence
(`damping=1` is the paper's undamped form). A KV head's importance is the sum over its query heads. Generated
tokens are always kept (the method prunes the prompt); when they fill the budget the newest win. Only the
importance-based ranking stage is implemented; the similarity-based merging stage (S-stage) is not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.sparse.ranking import group_sum, top_k_lex
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


def weighted_pagerank(attn: Tensor, damping: float = 0.85, tol: float = 1e-7, max_iter: int = 1000) -> Tensor:
    """Importance [..., N] of each node of row-stochastic attention graphs attn [..., N, N] by power iteration:
    s <- (1 - damping) / N + damping * attn^T s, from uniform s, until the L1 change is below `tol`.
    The result sums to 1 (the stationary distribution of the damped random walk i -> j with prob. attn[i, j])."""
    if attn.dim() < 2 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"attn must be [..., N, N], got {list(attn.shape)}")
    if not 0 < damping <= 1:
        raise ValueError(f"damping must be in (0, 1], got {damping!r}")
    a = attn.double()
    n = a.shape[-1]
    s = torch.full(a.shape[:-1], 1.0 / n, dtype=torch.float64, device=a.device)
    for _ in range(max_iter):
        nxt = (1 - damping) / n + damping * torch.einsum("...ij,...i->...j", a, s)
        nxt = nxt / nxt.sum(-1, keepdim=True)
        done = (nxt - s).abs().sum(-1).max() < tol
        s = nxt
        if done:
            break
    return s.float()


@register_selector("zero_tprune")
@dataclass
class ZeroTPrune(Selector):
    """Top prompt tokens by PageRank over the prefill attention graph; generated tokens kept."""

    damping: float = 0.85

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.damping, bool) or not 0 < self.damping <= 1:
            raise ValueError(f"damping must be in (0, 1], got {self.damping!r}")

    def importance(self, state: LayerState) -> Tensor:
        """PageRank importance [B, H_kv, P] of the prompt tokens (sum over the KV head's query heads)."""
        pq = state.prefill_queries
        if pq is None:
            raise ValueError("zero_tprune needs the prompt's queries: pass LayerState(prefill_queries=[B, H, P, D])")
        p = pq.shape[2]
        q = pq.float().reshape(state.batch, state.num_kv_heads, state.group_size, p, state.head_dim)
        logits = torch.einsum("bgqpd,bgsd->bgqps", q, state.keys[:, :, :p].float()) * state.scale
        causal = torch.ones(p, p, dtype=torch.bool, device=logits.device).tril()
        attn = logits.masked_fill(~causal, float("-inf")).softmax(-1)
        rank = weighted_pagerank(attn, self.damping)  # [B, H_kv, group, P]
        return group_sum(rank.reshape(state.batch, state.num_heads, p), state.num_kv_heads)

    def select(self, state: LayerState) -> Tensor:
        imp = state.memory.get("zero_tprune.importance")
        if imp is None:
            imp = state.memory["zero_tprune.importance"] = self.importance(state)
        p, s = imp.shape[-1], state.context_len
        pos = torch.arange(s, device=imp.device).view(1, 1, -1)
        generated = pos >= p
        padded = torch.cat([imp, imp.new_zeros(*imp.shape[:-1], s - p)], -1)
        return top_k_lex(self.k_per_head(state), state.kv_shape, generated,
                         torch.where(generated, pos.float(), padded))
