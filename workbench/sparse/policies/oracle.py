"""Oracle top-k: the tokens with the largest true attention, the ceiling any budgeted policy can reach."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from workbench.sparse.ranking import group_sum, top_k_lex
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


@register_selector("oracle")
@dataclass
class Oracle(Selector):
    """Top-k cached tokens by the exact softmax attention of the current query (not a deployable policy).

    GQA: a KV head ranks tokens by the sum of its query heads' softmax probabilities. That choice maximises the
    mean (over query heads) fraction of attention mass covered, so no selection of the same size per KV head
    covers more: `metrics.mass_recall` of the oracle is an upper bound for every policy at equal budget.
    Cost: it scores every key (all S keys read per KV head).
    """

    def select(self, state: LayerState) -> Tensor:
        probs = state.logits().softmax(-1)
        return top_k_lex(self.k_per_head(state), state.kv_shape, group_sum(probs, state.num_kv_heads))

    def extra_bytes(self, state: LayerState, elem_bytes: int) -> int:
        return state.batch * state.num_kv_heads * state.context_len * state.head_dim * elem_bytes
