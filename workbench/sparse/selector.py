"""The Selector interface: which cached tokens each KV head reads at one decode step of one layer.

A selector is a small dataclass (its configuration: budget and policy parameters) with one method,

    select(state: LayerState) -> LongTensor [B, H_kv, K]     # per KV head, sorted unique cache positions

and, for policies that learn from the attention they see (H2O, Keyformer), an `observe(state, probs)` hook that
the driver calls with the attention probabilities each step actually used (the dense prefill, then every sparse
decode step). Everything a policy remembers between steps lives in `state.memory`, the per-layer state object
the driver keeps for one sequence: selectors themselves hold no per-sequence data, so one selector serves all
layers and any number of sequences.

GQA convention: query head h reads KV head h // group_size (group_size = H / H_kv, as in HF `repeat_kv`). A
KV head's selection serves all its query heads, so policies aggregate over the group; each policy's docstring
says how (most sum the per-query-head softmax scores of the group).

Cost accounting: after `select`, `extra_bytes(state, elem_bytes)` tells how many bytes the policy read to make
that decision beyond the selected K/V rows (e.g. all keys for the oracle, page bounds for Quest).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from workbench.sparse.budget import Budget


@dataclass
class LayerState:
    """One layer's view at one decode step, plus the policy's memory for this sequence.

    query: [B, H, D] the decode step's query (after RoPE). keys: [B, H_kv, S, D] the cached keys, un-repeated,
    including the current token's key at position S - 1. prefill_queries: [B, H, P, D] the prompt's queries
    (positions 0..P-1), for prefill-time policies (SnapKV). scaling: softmax scale (default 1/sqrt(D)).
    """

    query: Tensor
    keys: Tensor
    layer_idx: int = 0
    prefill_queries: Tensor | None = None
    scaling: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.update(self.query, self.keys)
        if self.prefill_queries is not None:
            pq = self.prefill_queries
            if pq.dim() != 4 or pq.shape[0] != self.batch or pq.shape[1] != self.num_heads or pq.shape[3] != self.head_dim:
                raise ValueError(
                    f"prefill_queries must be [B, H, P, D] = [{self.batch}, {self.num_heads}, P, {self.head_dim}], "
                    f"got {list(pq.shape)}"
                )
            if pq.shape[2] > self.context_len:
                raise ValueError(
                    f"prefill_queries has {pq.shape[2]} positions but the cache holds only {self.context_len} keys"
                )

    def update(self, query: Tensor, keys: Tensor) -> None:
        """Move to the next decode step: the new query and the (grown) cache keys."""
        if query.dim() != 3:
            raise ValueError(f"query must be [B, H, D], got shape {list(query.shape)}")
        if keys.dim() != 4:
            raise ValueError(f"keys must be [B, H_kv, S, D], got shape {list(keys.shape)}")
        if query.shape[0] != keys.shape[0]:
            raise ValueError(f"query batch {query.shape[0]} != keys batch {keys.shape[0]}")
        if query.shape[2] != keys.shape[3]:
            raise ValueError(f"query head_dim {query.shape[2]} != keys head_dim {keys.shape[3]}")
        h, h_kv = query.shape[1], keys.shape[1]
        if h_kv == 0 or h % h_kv != 0:
            raise ValueError(
                f"num_heads ({h}) must be a multiple of num_kv_heads ({h_kv}): query head h reads KV head "
                f"h // group_size"
            )
        if keys.shape[2] < 1:
            raise ValueError("keys must hold at least one cached position")
        self.query, self.keys = query, keys

    @property
    def batch(self) -> int:
        return self.query.shape[0]

    @property
    def num_heads(self) -> int:
        return self.query.shape[1]

    @property
    def num_kv_heads(self) -> int:
        return self.keys.shape[1]

    @property
    def group_size(self) -> int:
        return self.num_heads // self.num_kv_heads

    @property
    def context_len(self) -> int:
        return self.keys.shape[2]

    @property
    def head_dim(self) -> int:
        return self.keys.shape[3]

    @property
    def kv_shape(self) -> tuple[int, int, int]:
        """(B, H_kv, S): the shape of per-KV-head token scores and of selection masks."""
        return self.batch, self.num_kv_heads, self.context_len

    @property
    def scale(self) -> float:
        return self.scaling if self.scaling is not None else self.head_dim ** -0.5

    def logits(self) -> Tensor:
        """Scaled q.k for every query head and cached key: [B, H, S] (fp32), GQA-grouped."""
        q = self.query.float().reshape(self.batch, self.num_kv_heads, self.group_size, self.head_dim)
        scores = torch.einsum("bgqd,bgsd->bgqs", q, self.keys.float()) * self.scale
        return scores.reshape(self.batch, self.num_heads, self.context_len)


@dataclass
class Selector:
    """Base class of every policy. Subclasses set `name` (via the registry) and implement `select`."""

    budget: Budget | int | float | None = None

    name: ClassVar[str] = "selector"
    needs_budget: ClassVar[bool] = True
    needs_observe: ClassVar[bool] = False  # True: the driver must call observe() with the attention it used

    def __post_init__(self) -> None:
        if self.budget is None:
            if self.needs_budget:
                raise ValueError(f"budget is required for policy {self.name!r} (tokens as int or ratio as float)")
        else:
            self.budget = Budget.of(self.budget)

    def select(self, state: LayerState) -> Tensor:
        """Indices [B, H_kv, K] each KV head attends to at this step (sorted ascending; PAD=-1 at the end)."""
        raise NotImplementedError

    def observe(self, state: LayerState, probs: Tensor) -> None:
        """Attention probabilities [B, H, T, S'] this layer just used (zeros where not selected); default: ignore."""

    def extra_bytes(self, state: LayerState, elem_bytes: int) -> int:
        """Bytes read to make the last selection, beyond the selected K/V rows (whole batch, all KV heads)."""
        return 0

    def k_per_head(self, state: LayerState) -> list[int]:
        """This layer's budget in tokens per KV head at the current context (clipped to the context)."""
        return self.budget.resolve(state.context_len, state.num_kv_heads, state.layer_idx)

    def params(self) -> dict:
        """The policy's parameters, JSON-safe."""
        out = {}
        for f in fields(self):  # real fields only: __dataclass_fields__ also lists the ClassVars
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, Budget) else v
        return out

    def __str__(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.params().items() if k != "budget")
        return f"{self.name}(budget={self.budget}{', ' + extra if extra else ''})"
