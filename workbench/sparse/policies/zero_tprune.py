"""Zero-TPrune: prompt tokens ranked by weighted PageRank on the prefill attention graph; the top ones are kept.

Paper: "Zero-TPrune: Zero-Shot Token Pruning through Leveraging of the Attention Graph in Pre-Trained
Transformers" (Wang et al., 2024). The attention matrix is a graph whose edge i -> j carries the weight A[i, j];
a token is important when important tokens attend to it, s = A^T s (weighted PageRank), found by power
iteration per head and averaged over heads (the "I-stage"); the least important tokens are pruned.

Here: the graph is each query head's causal prefill attention over the prompt (computed once per sequence,
from `LayerState.prefill_queries`, by `prepare` or at the first decode step). A causal graph drains all rank
into token 0 (row 0 attends only to itself), so the iteration is damped as in PageRank:
s = (1 - d) / P + d * A^T s, run to convergence (`damping=1` is the paper's undamped form). For damping < 1 the
fixed point of a causal graph is found by one triangular solve (`causal_pagerank`, equal to the power iteration
to its tolerance): one O(P^2) pass per head instead of ~100 power-iteration steps of O(P^2) each (at P = 4096
the iteration took ~59 s per layer on one core). A KV head's importance is the sum over its query heads.
Generated tokens are always kept (the method prunes the prompt); when they fill the budget the newest win. Only
the importance-based ranking stage is implemented; the similarity-based merging stage (S-stage) is not.
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


def causal_pagerank(attn: Tensor, damping: float = 0.85) -> Tensor:
    """`weighted_pagerank` of causal graphs, solved directly: attn [..., N, N] row-stochastic and lower
    triangular (row i attends to j <= i), damping < 1.

    The fixed point of s = (1 - d) / N + d * attn^T s (sum(s) = 1 is kept by every step, the rows summing to 1)
    solves the linear system s^T (I - d * attn) = (1 - d) / N * 1^T, whose matrix is lower triangular with a
    diagonal >= 1 - d > 0: one triangular solve (O(N^2)) instead of the power iteration's O(N^2) per step for
    ~log(tol) / log(d) steps. Matches the power iteration to its tolerance (tests)."""
    if attn.dim() < 2 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"attn must be [..., N, N], got {list(attn.shape)}")
    if not 0 < damping < 1:
        raise ValueError(f"damping must be in (0, 1) for the direct solve, got {damping!r} (use weighted_pagerank)")
    n = attn.shape[-1]
    m = attn.double().mul_(-damping)  # the solve reads only the lower triangle
    m.diagonal(dim1=-2, dim2=-1).add_(1.0)
    rhs = torch.full((*attn.shape[:-2], n, 1), (1 - damping) / n, dtype=torch.float64, device=attn.device)
    s = torch.linalg.solve_triangular(m.mT, rhs, upper=True).squeeze(-1)  # (I - d * attn)^T s = rhs
    return (s / s.sum(-1, keepdim=True)).float()


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
        """PageRank importance [B, H_kv, P] of the prompt tokens (sum over the KV head's query heads).

        One query head's [P, P] causal attention at a time (memory: one P x P matrix), ranked by
        `causal_pagerank` (a triangular solve) when damping < 1, by the power iteration when damping = 1."""
        pq = state.prefill_queries
        if pq is None:
            raise ValueError("zero_tprune needs the prompt's queries: pass LayerState(prefill_queries=[B, H, P, D])")
        p, g = pq.shape[2], state.group_size
        keys = state.keys[:, :, :p].float()
        causal = torch.ones(p, p, dtype=torch.bool, device=keys.device).tril()
        rank = keys.new_zeros(state.batch, state.num_heads, p)
        for b in range(state.batch):
            for h in range(state.num_heads):
                logits = (pq[b, h].float() @ keys[b, h // g].T).mul_(state.scale)
                attn = logits.masked_fill_(~causal, float("-inf")).softmax(-1)
                rank[b, h] = (causal_pagerank(attn, self.damping) if self.damping < 1
                              else weighted_pagerank(attn, self.damping))
        return group_sum(rank, state.num_kv_heads)

    def prepare(self, state: LayerState) -> None:
        """The prefill-time (budget-free) part: the prompt's importance, kept in `state.memory`."""
        if "zero_tprune.importance" not in state.memory:
            state.memory["zero_tprune.importance"] = self.importance(state)

    def select(self, state: LayerState) -> Tensor:
        self.prepare(state)
        imp = state.memory["zero_tprune.importance"]
        p, s = imp.shape[-1], state.context_len
        pos = torch.arange(s, device=imp.device).view(1, 1, -1)
        generated = pos >= p
        padded = torch.cat([imp, imp.new_zeros(*imp.shape[:-1], s - p)], -1)
        return top_k_lex(self.k_per_head(state), state.kv_shape, generated,
                         torch.where(generated, pos.float(), padded))
