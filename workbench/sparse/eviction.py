"""Eviction mode: after every decode step the cache physically keeps only what each KV head selected.

    gen = sparse_generate(lm, prompt, "h2o", budget=64, mode="evict")
    gen.cache_bytes          # bytes the cache holds after each step: about budget rows per head, not the context

Masked mode keeps every row and hides the unselected ones; here the step's selection (per layer and KV head)
becomes the whole cache through `KVCache.gather`, so the memory is freed and the next step selects among the
kept rows plus the new token. The prompt is processed densely (all P rows, as in masked mode); the first decode
step selects among P + 1 rows and the cache shrinks right after it. Kept keys keep their rotary phase, so every
decode step passes its true position explicitly (`position_ids`), as the KVCache docs ask.

For a policy whose selection is monotone (each step's selection is a subset of the previous selection plus the
new token: StreamingLLM, H2O and Keyformer, SnapKV and Zero-TPrune with generated tokens kept) eviction reads
exactly the rows masked mode reads and gives the same tokens. For query-aware policies (Quest, Landmark,
TokenSelect, FASA, the oracle) it differs: a row dropped at one step can no longer be chosen later.

Policy memory that refers to cache slots follows the gather (the table below lists it by memory key):
one value per slot, a prefix [B, H_kv, n] of the slots (H2O's running scores, SnapKV's prompt votes,
Zero-TPrune's prompt importance) is gathered with the kept slots; TokenSelect's cached selection is dropped
(after an eviction the context is no longer the last one plus a token, so it could not be reused anyway) and
recomputed at the next step. The prompt queries are released after the first
eviction (policies that use them memoize what they need at the first decode step). SpAtten is refused: its
pruning state is shared by all layers and its rows may be PAD-padded. Per-layer or per-head budgets are refused
(`KVCache.gather` needs the same row count everywhere), and so are models with sliding-window layers (their
window is measured in cache slots once heads keep different rows).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor

from workbench.sparse.ranking import PAD
from workbench.sparse.selector import LayerState, Selector

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models.cache import KVCache
    from workbench.models.lm import LM
    from workbench.models.outputs import Generation
    from workbench.sparse.integration import SparseAttention

SLOT_MEMORY = frozenset({"h2o.score", "h2o.evicted", "keyformer.score", "keyformer.evicted", "snapkv.votes",
                         "zero_tprune.importance"})
DROPPED_MEMORY = frozenset({"tokenselect.keep"})
UNSUPPORTED = {"spatten": "its token pruning state is shared by all layers and its rows may be PAD-padded"}


def check_evictable(lm: LM, selector: Selector) -> None:
    """Raise ValueError unless eviction mode can run this selector on this model (see the module docstring)."""
    if selector.name in UNSUPPORTED:
        raise ValueError(f"mode 'evict' does not support policy {selector.name!r}: {UNSUPPORTED[selector.name]}")
    b = selector.budget
    if b is not None and (b.layers or b.heads is not None):
        raise ValueError("mode 'evict' needs one budget for every layer and KV head (KVCache.gather keeps the same "
                         "number of rows everywhere); per-layer / per-head budgets are for masked mode")
    if "sliding_attention" in (getattr(lm.text_config, "layer_types", None) or []):
        raise ValueError("mode 'evict' does not support models with sliding-window layers")


def remap_memory(state: LayerState, indices: Tensor) -> None:
    """Make the policy memory of one layer follow `cache.gather(indices)` (indices [B, H_kv, K], ascending)."""
    for key in list(state.memory):
        value = state.memory[key]
        if key in DROPPED_MEMORY:
            del state.memory[key]
        elif key in SLOT_MEMORY and isinstance(value, Tensor):
            n = value.shape[-1]
            inside = (indices < n).sum(-1)
            count = int(inside.min())
            if int(inside.max()) != count:
                raise RuntimeError(f"eviction: {key!r} covers {n} slots but KV heads keep different numbers of them")
            state.memory[key] = value.gather(-1, indices[..., :count].to(value.device))
    state.prefill_queries = None


def evict(attn: SparseAttention, cache: KVCache, selections: dict[int, Tensor]) -> bool:
    """Gather every layer of `cache` to its selection of the last decode step; returns whether rows were dropped."""
    if sorted(selections) != list(range(cache.num_layers)):
        raise RuntimeError(f"eviction: selections for layers {sorted(selections)}, the cache has {cache.num_layers}")
    per_layer = [selections[i] for i in range(cache.num_layers)]
    length = cache.length
    if all(idx.shape[-1] == length and not bool((idx == PAD).any()) for idx in per_layer):
        return False  # every row selected everywhere
    for i, idx in enumerate(per_layer):
        if bool((idx == PAD).any()):
            raise ValueError(f"eviction: layer {i} selected different numbers of rows per KV head (PAD-padded)")
    cache.gather(per_layer)
    for i, idx in enumerate(per_layer):
        remap_memory(attn.states[i], idx)
    return True


def evicting_generate(lm: LM, prompt: str | Sequence[int], attn: SparseAttention, *, max_new_tokens: int,
                      temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                      seed: int | None = None, stop: str | Sequence[str] | None = None,
                      progress: bool = False) -> tuple[Generation, list[int], list[int]]:
    """`lm.generate`'s loop with an eviction after every decode step and explicit positions.

    Returns (the Generation, bytes held by the cache after each decode step, bytes a full cache would hold).
    """
    from workbench.models.generation import end_of_text, eos_ids, prompt_ids
    from workbench.models.outputs import Generation
    from workbench.models.sampling import (
        check_sampling,
        make_generator,
        pick_token,
    )

    check_sampling(temperature, top_k, top_p)
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(not isinstance(s, str) or not s for s in stops):
        raise ValueError(f"stop must be None, a non-empty string or a list of non-empty strings, got {stop!r}")
    ids = prompt_ids(lm, prompt)
    generator = make_generator(seed, lm.device) if temperature > 0 else None
    ends = eos_ids(lm)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_new_tokens, desc="generate (evict)", unit="tok")
    start_counters = lm.counters.snapshot()
    start = time.perf_counter()
    cache = lm.new_cache()
    with lm.attention(attn):
        logits = lm.forward(ids, cache=cache).logits[0, -1]
    prefill_seconds = time.perf_counter() - start
    per_row = cache.nbytes // len(ids)  # bytes of one position in every layer and KV head
    held, dense = [], []
    new_ids: list[int] = []
    text_end, reason = None, "length"
    while True:
        token = pick_token(logits, temperature, top_k, top_p, generator)
        new_ids.append(token)
        if bar is not None:
            bar.update(1)
        ended, text_end = end_of_text(lm, new_ids, ends, stops)
        if ended is not None:
            reason = ended
            break
        position = len(ids) + len(new_ids) - 1
        if len(new_ids) >= max_new_tokens:
            break
        if position >= lm.max_context:
            reason = "context"
            break
        with lm.attention(attn):
            logits = lm.forward([token], cache=cache, position_ids=[position]).logits[0, -1]
        attn.evict(cache)
        held.append(cache.nbytes)
        dense.append(per_row * (position + 1))
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    kept = new_ids[:-1] if reason == "eos" else new_ids
    text = lm.tokenizer.decode(kept)
    if text_end is not None:
        text = text[:text_end]
    gen = Generation(
        prompt_ids=ids, new_ids=new_ids, text=text, seconds=seconds,
        tokens_per_second=len(new_ids) / seconds if seconds > 0 else float("inf"),
        forward_calls=(lm.counters.snapshot() - start_counters).forward_calls, prefill_seconds=prefill_seconds,
        stop_reason=reason, settings={"max_new_tokens": max_new_tokens, "temperature": float(temperature),
                                      "top_k": top_k, "top_p": top_p, "seed": seed, "stop": stops})
    return gen, held, dense
