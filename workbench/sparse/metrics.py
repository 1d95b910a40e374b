"""How good and how cheap a selection is, at one decode step of one layer.

- mass_recall: the fraction of each query head's true softmax mass that falls on the selected positions.
- normalized_recall: mass_recall divided by the oracle's (top-k by true attention, same count per KV head).
- output_error: relative L2 error of the sparse attention output against full attention.
- kv bytes read: selected K and V rows (count x head_dim x 2 x dtype bytes), plus the metadata the policy read
  to decide (`Selector.extra_bytes`: all keys for the oracle / a re-voting TokenSelect, page bounds for Quest,
  running scores for H2O), plus the index list itself (none when everything is read).
- speedup_bound: a decode step that scores a fraction s of the L keys and then reads B selected K/V rows moves
  s*L + 2*B rows instead of 2*L, so attention speedup <= 2L / (s*L + 2B) when memory-bound.

`evaluate_selection` runs one selector on synthetic or captured tensors and reports all of these.
"""
from __future__ import annotations

import html
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from workbench.sparse.ranking import PAD, count_selected, group_sum, indices_to_mask
from workbench.sparse.reference import (
    attention_probs,
    check_indices,
    check_shapes,
    dense_attention,
    sparse_attention,
)
from workbench.sparse.selector import LayerState, Selector


def mass_recall(query: Tensor, keys: Tensor, indices: Tensor, scaling: float | None = None) -> Tensor:
    """Fraction of true attention mass on the selection, per query head: [B, H] in [0, 1]."""
    b, h, h_kv, s, _ = check_shapes(query, keys)
    check_indices(indices, b, h_kv, s)
    probs = attention_probs(query, keys, scaling)
    mask = indices_to_mask(indices, s).repeat_interleave(h // h_kv, dim=1)
    return (probs * mask).sum(-1)


def oracle_mass_recall(query: Tensor, keys: Tensor, counts: Tensor, scaling: float | None = None) -> Tensor:
    """Mass recall [B, H] of the oracle selection with `counts` [B, H_kv] positions per KV head.

    The oracle ranks a KV head's positions by the sum of its query heads' probabilities, which maximises the
    group's summed (hence the mean) recall among all selections of that size.
    """
    _, h, h_kv, _, _ = check_shapes(query, keys)
    probs = attention_probs(query, keys, scaling)
    votes = group_sum(probs, h_kv)
    rank = torch.argsort(torch.argsort(votes, dim=-1, descending=True, stable=True), dim=-1)
    mask = (rank < counts.to(rank.device).unsqueeze(-1)).repeat_interleave(h // h_kv, dim=1)
    return (probs * mask).sum(-1)


def normalized_recall(query: Tensor, keys: Tensor, indices: Tensor, scaling: float | None = None) -> Tensor:
    """mass_recall / oracle mass_recall at the same per-head count: [B, H], 1.0 = as good as the oracle."""
    counts = (indices != PAD).sum(-1)
    return mass_recall(query, keys, indices, scaling) / oracle_mass_recall(query, keys, counts, scaling)


def output_error(query: Tensor, keys: Tensor, values: Tensor, indices: Tensor, scaling: float | None = None) -> Tensor:
    """Relative L2 error ||o_sparse - o_full|| / ||o_full|| per query head: [B, H] (fp32)."""
    full = dense_attention(query.float(), keys.float(), values.float(), scaling)
    sparse = sparse_attention(query.float(), keys.float(), values.float(), indices, scaling)
    return (sparse - full).norm(dim=-1) / full.norm(dim=-1).clamp_min(1e-30)


def selected_kv_bytes(indices: Tensor, head_dim: int, elem_bytes: int) -> int:
    """Bytes of K and V rows read for a selection: selected positions x head_dim x 2 x elem_bytes."""
    return count_selected(indices) * head_dim * 2 * elem_bytes


def dense_kv_bytes(batch: int, num_kv_heads: int, context_len: int, head_dim: int, elem_bytes: int) -> int:
    """Bytes of K and V a full-attention decode step reads."""
    return batch * num_kv_heads * context_len * head_dim * 2 * elem_bytes


def speedup_bound(context_len: int, budget: float, scored_fraction: float) -> float:
    """Upper bound of the attention speedup from selection: 2L / (s*L + 2B).

    context_len L, budget B (selected positions per head, <= L), scored_fraction s (key rows read to select,
    as a fraction of L: 1 for scoring every key, 2/page_size for Quest, 0 for position-only policies).
    """
    if context_len <= 0:
        raise ValueError(f"context_len must be > 0, got {context_len}")
    if not 0 < budget <= context_len:
        raise ValueError(f"budget must be in (0, context_len={context_len}], got {budget}")
    if scored_fraction < 0:
        raise ValueError(f"scored_fraction must be >= 0, got {scored_fraction}")
    return 2 * context_len / (scored_fraction * context_len + 2 * budget)


@dataclass
class SelectionReport:
    """Quality and cost of one selector at one decode step (means over batch and query heads)."""

    policy: str
    params: dict
    context_len: int
    batch: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    dtype: str
    selected_per_head: float
    recall: float
    oracle_recall: float
    normalized_recall: float
    output_rel_error: float
    max_output_rel_error: float
    kv_bytes: int
    metadata_bytes: int
    index_bytes: int
    dense_kv_bytes: int
    scored_fraction: float
    speedup_bound: float

    @property
    def total_bytes(self) -> int:
        return self.kv_bytes + self.metadata_bytes + self.index_bytes

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_bytes"] = self.total_bytes
        return d

    def __repr__(self) -> str:
        return (
            f"SelectionReport({self.policy}: {self.selected_per_head:g}/{self.context_len} tokens per head, "
            f"recall {self.recall:.4f} (oracle {self.oracle_recall:.4f}), output rel. error "
            f"{self.output_rel_error:.2e}, bytes {self.total_bytes} of dense {self.dense_kv_bytes}, "
            f"speedup bound {self.speedup_bound:.2f}x)"
        )

    def view(self):
        """The interactive view of this result (`workbench.sparse.view.report_view`)."""
        from workbench.sparse.view import report_view

        return report_view(self)

    def show(self):
        """Display the live widget (in Jupyter) and return it."""
        return self.view().show()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in self.to_dict().items()
        )
        return f"<table><caption>SelectionReport: {html.escape(self.policy)}</caption>{rows}</table>"


def evaluate_selection(
    selector: Selector,
    query: Tensor,
    keys: Tensor,
    values: Tensor,
    *,
    prefill_queries: Tensor | None = None,
    scaling: float | None = None,
    layer_idx: int = 0,
    index_bytes: int = 4,
) -> SelectionReport:
    """Run `selector` for one decode step and measure it.

    The budget must fit the context (a larger budget is a ValueError, checked before any work). With
    `prefill_queries` [B, H, P, D] (the queries of positions 0..P-1), policies that learn from attention first
    observe the dense causal prefill attention, as they would in generation.
    """
    b, h, h_kv, s, d = check_shapes(query, keys, values)
    if selector.budget is not None:
        selector.budget.resolve(s, h_kv, layer_idx, clip=False)
    state = LayerState(query, keys, layer_idx=layer_idx, prefill_queries=prefill_queries, scaling=scaling)
    if prefill_queries is not None and selector.needs_observe:
        p = prefill_queries.shape[2]
        q = prefill_queries.float().reshape(b, h_kv, h // h_kv, p, d)
        logits = torch.einsum("bgqpd,bgsd->bgqps", q, keys[:, :, :p].float()) * state.scale
        causal = torch.ones(p, p, dtype=torch.bool, device=logits.device).tril()
        probs = logits.masked_fill(~causal, float("-inf")).softmax(-1).reshape(b, h, p, p)
        selector.observe(state, probs)
    indices = selector.select(state)
    elem = keys.element_size()
    recall = mass_recall(query, keys, indices, scaling)
    counts = (indices != PAD).sum(-1)
    oracle = oracle_mass_recall(query, keys, counts, scaling)
    err = output_error(query, keys, values, indices, scaling)
    meta = selector.extra_bytes(state, elem)
    key_bytes_all = b * h_kv * s * d * elem
    scored = meta / key_bytes_all
    mean_k = float(counts.float().mean())
    return SelectionReport(
        policy=selector.name,
        params={k: v for k, v in selector.params().items()},
        context_len=s,
        batch=b,
        num_heads=h,
        num_kv_heads=h_kv,
        head_dim=d,
        dtype=str(keys.dtype).removeprefix("torch."),
        selected_per_head=mean_k,
        recall=float(recall.mean()),
        oracle_recall=float(oracle.mean()),
        normalized_recall=float((recall / oracle).mean()),
        output_rel_error=float(err.mean()),
        max_output_rel_error=float(err.max()),
        kv_bytes=selected_kv_bytes(indices, d, elem),
        metadata_bytes=meta,
        index_bytes=0 if count_selected(indices) == b * h_kv * s else count_selected(indices) * index_bytes,
        dense_kv_bytes=dense_kv_bytes(b, h_kv, s, d, elem),
        scored_fraction=scored,
        speedup_bound=speedup_bound(s, mean_k, scored),
    )
