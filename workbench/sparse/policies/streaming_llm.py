"""StreamingLLM: attention sinks + a recent window.

Paper: "Efficient Streaming Language Models with Attention Sinks" (Xiao et al., 2023). The first few tokens
absorb a large share of attention whatever their content ("attention sinks"); keeping them plus a sliding window
of the most recent tokens keeps the model stable on unbounded streams. Query-agnostic: the choice depends only
on positions. Simplification: positions are not re-assigned inside the cache (the paper's rolling cache
re-indexes RoPE positions); in masked mode the model sees the original positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.sparse.ranking import top_k_lex
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


@register_selector("streaming_llm")
@dataclass
class StreamingLLM(Selector):
    """Keeps the first `sinks` positions and the most recent (budget - sinks) positions, for every KV head."""

    sinks: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.sinks, bool) or not isinstance(self.sinks, int) or self.sinks < 0:
            raise ValueError(f"sinks must be an int >= 0, got {self.sinks!r}")

    def select(self, state: LayerState) -> Tensor:
        pos = torch.arange(state.context_len, device=state.keys.device).view(1, 1, -1)
        sink = pos < self.sinks
        # sinks first (earliest first if the budget is smaller than `sinks`), then the most recent positions
        return top_k_lex(self.k_per_head(state), state.kv_shape, sink, torch.where(sink, -pos, pos))
