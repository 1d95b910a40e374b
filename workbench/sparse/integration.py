"""Sparse attention inside a real model: generation where every decode step reads only the selected KV.

    gen = sparse_generate(lm, "Once upon a time", "h2o", budget=64, max_new_tokens=32)
    gen.generation.text, gen.kv_bytes_per_step, gen.to_dict()

    attn = SparseAttention(get_selector("quest", budget=0.125))    # or drive lm.forward yourself
    with lm.attention(attn):
        ...

Two modes compute the same decode attention. Masked mode (exact semantics, for quality studies): the cache keeps
every token; the prompt is processed with
dense attention (its queries are kept for prefill-time policies such as SnapKV, and policies that learn from
attention observe the prefill probabilities); at each decode step (one new token) the selector picks positions
per KV head and attention is a softmax over those positions only. The model's own mask is honoured: layers whose
mask already restricts a decode step (sliding-window layers) attend their window densely and are counted so.
Calls with several new tokens after the prompt (e.g. speculative verification) are dense in this mode.
Gathered mode: decode steps call `workbench.kernels.sparse_decode_attention` on the selected positions (the CUDA
kernel on a GPU with CuPy, its PyTorch reference elsewhere) instead of masking a dense softmax; layers with
attention logit softcapping, which the kernel lacks, use the masked computation. Evict mode
(`workbench.sparse.eviction`): each decode step attends its selection as in masked mode and then the cache
physically keeps only the selected rows (`SparseAttention.evict(cache)` after the forward, `KVCache.gather`).

With `track_recall=True` every decode step also records, per layer, the attention mass on the selection and that
of the oracle top-k of the same size (`RecallRecord`); `start_from_prefill` lets a prompt processed elsewhere
(`workbench.sparse.prefill`, one dense prefill shared by many policies) stand in for the dense prefill.

KV bytes read per decode step are counted over all layers, the batch and KV heads: selected K and V rows, the
metadata the policy read to decide (`Selector.extra_bytes`) and the index list (none when a layer reads every
row). The dense baseline is what the unmodified layer reads (the window, for sliding-window layers).
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from workbench.sparse.ranking import (
    PAD,
    count_selected,
    group_sum,
    indices_to_mask,
    to_lengths,
)
from workbench.sparse.reference import attention_probs, sparse_attention
from workbench.sparse.registry import get_selector
from workbench.sparse.selector import LayerState, Selector

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models.cache import KVCache
    from workbench.models.lm import LM
    from workbench.models.outputs import Generation


MODES = ("masked", "gathered", "evict")


@dataclass
class StepCost:
    """KV traffic of one decode step, summed over layers, batch and KV heads."""

    step: int
    context_len: int
    rows: int  # K/V positions read (per KV head, summed)
    kv_bytes: int
    metadata_bytes: int
    index_bytes: int
    dense_kv_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.kv_bytes + self.metadata_bytes + self.index_bytes


@dataclass
class RecallRecord:
    """Attention-mass recall of one layer's selection at one decode step (means over batch and query heads),
    and that of the oracle top-k with the same number of positions per KV head (`metrics.oracle_mass_recall`)."""

    step: int
    layer: int
    recall: float
    oracle_recall: float


class SparseAttention:
    """The function for `with lm.attention(fn)`: dense prefill, selected-only decode steps (masked mode).

    Holds one `LayerState` per layer for the current sequence; a call with no cached past (key length equals the
    number of new tokens) starts a new sequence for that layer.
    """

    def __init__(self, selector: Selector, mode: str = "masked", backend: str | None = None, index_bytes: int = 4,
                 track_recall: bool = False):
        if not isinstance(selector, Selector):
            raise ValueError(f"selector must be a Selector (see get_selector), got {type(selector).__name__}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        self.mode, self.backend = mode, backend
        self.selector = selector
        self.index_bytes = index_bytes
        self.states: dict[int, LayerState] = {}
        self.steps: list[StepCost] = []
        self._decode_steps: dict[int, int] = {}
        self.track_recall = track_recall
        self.recalls: list[RecallRecord] = []
        self._selections: dict[int, Tensor] = {}  # evict mode: the last decode step's selection per layer
        self._seen: dict[int, int] = {}  # evict mode: positions seen per layer (the context without eviction)

    def reset(self) -> None:
        self.states.clear()
        self.steps.clear()
        self._decode_steps.clear()
        self.recalls.clear()
        self._selections.clear()
        self._seen.clear()

    def start_from_prefill(self, layer_idx: int, queries: Tensor, keys: Tensor, scaling: float) -> LayerState:
        """Begin a sequence at one layer from a prompt processed elsewhere (`workbench.sparse.prefill`).

        queries [B, H, P, D] and keys [B, H_kv, P, D] of the prompt, as the dense prefill of `__call__` would
        have seen them; the next call with one new token is a decode step. Policies that learn from attention
        must still observe the prefill probabilities (`workbench.sparse.prefill.start_policies` does that).
        """
        if layer_idx == 0:
            self.reset()
        self._decode_steps.pop(layer_idx, None)
        self._seen[layer_idx] = keys.shape[2]
        state = LayerState(queries[:, :, -1], keys, layer_idx=layer_idx, prefill_queries=queries, scaling=scaling)
        self.states[layer_idx] = state
        return state

    def __call__(self, query: Tensor, key: Tensor, value: Tensor, *, layer_idx: int, scaling: float,
                 attention_mask: Tensor | None, module: Any = None):
        from workbench.models.attention import reference_attention

        new, total = query.shape[2], key.shape[2]
        if total == new:  # a new sequence starts at this layer
            self.states.pop(layer_idx, None)
            self._decode_steps.pop(layer_idx, None)
            self._seen.pop(layer_idx, None)
            if layer_idx == min([layer_idx, *self.states]):
                self.steps.clear()
                self.recalls.clear()
                self._selections.clear()
        state = self.states.get(layer_idx)
        allowed = None if attention_mask is None else attention_mask > torch.finfo(attention_mask.dtype).min / 2
        decoding = new == 1 and state is not None
        if not decoding or (allowed is not None and not bool(allowed.all())):
            out, probs = reference_attention(query, key, value, scaling=scaling, attention_mask=attention_mask,
                                             module=module, return_weights=True)
            if decoding:  # a local (sliding-window) layer: dense over its window
                rows = int(allowed.expand(key.shape[0], 1, 1, total).sum()) * key.shape[1]
                self._record(layer_idx, total, rows, key, 0, dense_rows=rows)
            elif layer_idx not in self._decode_steps:  # the prompt (possibly in chunks)
                self._prefill(layer_idx, query, key, scaling, probs)
            return out, probs

        state.update(query[:, :, 0], key)
        indices = self.selector.select(state)
        if self.track_recall:
            self._track_recall(state, indices, scaling)
        context = total
        if self.mode == "evict":
            self._selections[layer_idx] = indices
            self._seen[layer_idx] = context = self._seen.get(layer_idx, total - 1) + 1
        if self.mode == "gathered" and getattr(module, "attn_logit_softcapping", None) is None:
            return self._gathered(state, query, key, value, indices, scaling)
        selected = indices_to_mask(indices, total).repeat_interleave(state.group_size, dim=1).unsqueeze(2)
        floor = torch.finfo(query.dtype).min
        base = attention_mask if attention_mask is not None else query.new_zeros(1, 1, 1, total)
        mask = torch.where(selected, base.to(query.dtype), torch.full_like(selected, floor, dtype=query.dtype))
        out, probs = reference_attention(query, key, value, scaling=scaling, attention_mask=mask, module=module,
                                         return_weights=True)
        if self.selector.needs_observe:
            self.selector.observe(state, probs)
        self._record(layer_idx, context, count_selected(indices), key,
                     self.selector.extra_bytes(state, key.element_size()))
        return out, probs

    def evict(self, cache: KVCache) -> bool:
        """Evict mode, after a decode step's forward: keep in `cache` only the rows each layer and KV head just
        selected (`KVCache.gather`); the policy's slot-indexed memory follows. Returns whether rows were dropped."""
        from workbench.sparse.eviction import evict

        if self.mode != "evict":
            raise ValueError(f"evict() is for mode 'evict', this SparseAttention is in mode {self.mode!r}")
        if not self._selections:
            return False
        try:
            return evict(self, cache, self._selections)
        finally:
            self._selections.clear()

    def _gathered(self, state: LayerState, query: Tensor, key: Tensor, value: Tensor, indices: Tensor,
                  scaling: float):
        from workbench.kernels import sparse_decode_attention

        flat, lengths = to_lengths(indices)
        out = sparse_decode_attention(query[:, :, 0], key, value, flat, lengths, scaling, check_indices=False,
                                      backend=self.backend)
        probs = None
        if self.selector.needs_observe:
            probs = sparse_attention(query[:, :, 0], key, value, indices, scaling, return_probs=True)[1].unsqueeze(2)
            self.selector.observe(state, probs)
        self._record(state.layer_idx, key.shape[2], count_selected(indices), key,
                     self.selector.extra_bytes(state, key.element_size()))
        return out.unsqueeze(2), probs

    def _track_recall(self, state: LayerState, indices: Tensor, scaling: float) -> None:
        """`metrics.mass_recall` and `metrics.oracle_mass_recall` from one softmax (the same numbers)."""
        probs = attention_probs(state.query, state.keys, scaling)
        g = state.group_size
        recall = (probs * indices_to_mask(indices, state.context_len).repeat_interleave(g, dim=1)).sum(-1)
        counts = (indices != PAD).sum(-1)
        k = int(counts.max())
        top = group_sum(probs, state.num_kv_heads).topk(k, dim=-1, sorted=True).indices  # [B, H_kv, k]
        top = torch.where(torch.arange(k, device=top.device) < counts.unsqueeze(-1), top, PAD)
        oracle = (probs * indices_to_mask(top, state.context_len).repeat_interleave(g, dim=1)).sum(-1)
        step = self._decode_steps.get(state.layer_idx, 0)
        self.recalls.append(RecallRecord(step, state.layer_idx, float(recall.mean()), float(oracle.mean())))

    def _prefill(self, layer_idx: int, query: Tensor, key: Tensor, scaling: float, probs: Tensor) -> None:
        self._seen[layer_idx] = key.shape[2]
        state = self.states.get(layer_idx)
        if state is None:
            state = LayerState(query[:, :, -1], key, layer_idx=layer_idx, prefill_queries=query, scaling=scaling)
            self.states[layer_idx] = state
        else:  # prompt fed in several chunks
            state.update(query[:, :, -1], key)
            state.prefill_queries = torch.cat([state.prefill_queries, query], dim=2)
        if self.selector.needs_observe:
            self.selector.observe(state, probs)

    def _record(self, layer_idx: int, context: int, rows: int, key: Tensor, meta: int,
                dense_rows: int | None = None) -> None:
        """Add one layer's traffic to its decode step. dense_rows: what the unmodified layer reads."""
        step = self._decode_steps.get(layer_idx, 0)
        self._decode_steps[layer_idx] = step + 1
        if step == len(self.steps):
            self.steps.append(StepCost(step, context, 0, 0, 0, 0, 0))
        cost = self.steps[step]
        elem, b, h_kv, _, d = key.element_size(), *key.shape
        dense_rows = b * h_kv * context if dense_rows is None else dense_rows
        cost.rows += rows
        cost.kv_bytes += rows * d * 2 * elem
        cost.metadata_bytes += meta
        cost.index_bytes += rows * self.index_bytes if rows < dense_rows else 0  # no list needed to read all
        cost.dense_kv_bytes += dense_rows * d * 2 * elem


@dataclass
class SparseGeneration:
    """A generation under a sparse attention policy, with the KV traffic of every decode step."""

    policy: str
    params: dict
    generation: Generation
    steps: list[StepCost] = field(default_factory=list)
    cache_bytes: list[int] = field(default_factory=list)  # evict mode: bytes the cache holds after each step
    dense_cache_bytes: list[int] = field(default_factory=list)  # evict mode: what a full cache would hold

    @property
    def kv_bytes_per_step(self) -> list[int]:
        """Bytes read per decode step (selected K/V + policy metadata + indices), all layers."""
        return [s.total_bytes for s in self.steps]

    @property
    def dense_bytes_per_step(self) -> list[int]:
        return [s.dense_kv_bytes for s in self.steps]

    @property
    def bytes_ratio(self) -> float:
        """Total bytes read / total bytes dense attention would read, over all decode steps."""
        dense = sum(self.dense_bytes_per_step)
        return sum(self.kv_bytes_per_step) / dense if dense else 1.0

    def to_dict(self) -> dict:
        return {
            "policy": self.policy,
            "params": self.params,
            "generation": self.generation.to_dict(),
            "steps": [asdict(s) | {"total_bytes": s.total_bytes} for s in self.steps],
            "bytes_ratio": self.bytes_ratio,
            "cache_bytes": list(self.cache_bytes),
            "dense_cache_bytes": list(self.dense_cache_bytes),
        }

    def __repr__(self) -> str:
        return (f"SparseGeneration({self.policy}, {len(self.generation.new_ids)} new tokens, "
                f"{self.bytes_ratio:.3f} of dense KV bytes, text={self.generation.text!r:.60})")

    def view(self):
        """The interactive view of this result (`workbench.sparse.view.generation_view`)."""
        from workbench.sparse.view import generation_view

        return generation_view(self)

    def show(self):
        """Display the live widget (in Jupyter) and return it."""
        return self.view().show()

    def _repr_html_(self) -> str:
        return (f"<div><b>{html.escape(self.policy)}</b> {html.escape(str(self.params))}: "
                f"{len(self.generation.new_ids)} new tokens, {self.bytes_ratio:.3f} of dense KV bytes"
                f"<pre>{html.escape(self.generation.text)}</pre></div>")


def sparse_generate(lm: LM, prompt: str | Sequence[int], policy: str | Selector = "full", budget=None, *,
                    max_new_tokens: int = 32, temperature: float = 0.0, top_k: int | None = None,
                    top_p: float | None = None, seed: int | None = None, stop: str | Sequence[str] | None = None,
                    progress: bool = False, mode: str = "masked", backend: str | None = None,
                    **params) -> SparseGeneration:
    """`lm.generate` with every decode step restricted to the policy's selection.

    policy: a registered name (with `budget` and policy `params`) or a Selector. The budget may not exceed the
    longest context this generation can reach (prompt + max_new_tokens); that is checked before any work.
    mode: "masked", "gathered" or "evict" (see the module docstring); backend: the kernel backend for gathered
    mode. In evict mode `cache_bytes` records the memory the shrinking cache holds after each decode step.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if isinstance(policy, Selector):
        if budget is not None or params:
            raise ValueError("give budget and policy parameters to the Selector itself, not to sparse_generate")
        selector = policy
    else:
        selector = get_selector(policy, budget=budget, **params)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    if isinstance(prompt, str):
        n_prompt = len(lm.tokenizer.encode(prompt, add_special_tokens=True))
    else:
        n_prompt = len(prompt)
    if selector.budget is not None:
        longest = min(n_prompt + max_new_tokens, lm.max_context)
        selector.budget.check(longest, lm.num_kv_heads, lm.num_layers)
    if mode == "evict":
        from workbench.sparse.eviction import check_evictable, evicting_generate

        check_evictable(lm, selector)
    attn = SparseAttention(selector, mode=mode, backend=backend)
    params_out = {**selector.params(), "mode": mode}
    if mode == "evict":
        gen, held, dense = evicting_generate(lm, prompt, attn, max_new_tokens=max_new_tokens, temperature=temperature,
                                             top_k=top_k, top_p=top_p, seed=seed, stop=stop, progress=progress)
        return SparseGeneration(policy=selector.name, params=params_out, generation=gen, steps=list(attn.steps),
                                cache_bytes=held, dense_cache_bytes=dense)
    with lm.attention(attn):
        gen = lm.generate(prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                          seed=seed, stop=stop, progress=progress)
    return SparseGeneration(policy=selector.name, params=params_out, generation=gen, steps=list(attn.steps))
