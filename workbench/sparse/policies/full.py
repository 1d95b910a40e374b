"""Full attention: every cached token, the quality reference every other policy is compared with."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from workbench.sparse.ranking import all_positions
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


@register_selector("full")
@dataclass
class Full(Selector):
    """Selects all S cached positions for every KV head; the budget, if given, is ignored."""

    needs_budget = False

    def select(self, state: LayerState) -> Tensor:
        return all_positions(state.batch, state.num_kv_heads, state.context_len, state.keys.device)
