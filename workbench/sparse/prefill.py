"""One dense prefill, replayed into any number of sparse policies: the expensive part of an evaluation done once.

    pre = dense_prefill(lm, ids)                       # ids [B, P]: one forward, keeps the cache and the queries
    attns = [SparseAttention(get_selector("h2o", budget=b)) for b in (64, 128)]
    start_policies(pre, attns)                         # each policy sees the prefill as if it had run it itself
    for attn in attns:
        logits = decode(lm, attn, pre, next_tokens)    # teacher-forced decode steps under the policy

What a policy sees is what `SparseAttention` gives it in its own dense prefill: per layer the prompt's queries
(`LayerState.prefill_queries`, for SnapKV / Zero-TPrune / FASA) and the prompt's keys; policies that learn from
attention (H2O, Keyformer, SpAtten) observe the causal prefill probabilities, recomputed here from the kept
queries and keys in row chunks (the full [H, P, P] matrix of a long prompt does not fit in memory) and handed to
every observing policy at once, layer by layer in model order (SpAtten's cross-layer cascade relies on that).
A chunk of rows lo..hi-1 is handed over only up to column hi - 1 (`causal_probs_block`): the columns it cannot
see are zeros, which the observers' sums and Keyformer's score ignore, so leaving them out halves the work.
Simplification: observe() gets the probabilities in row chunks rather than in one call; for H2O and SpAtten the
sums are the same, Keyformer draws its Gumbel noise per chunk (an equally distributed draw, not the same one).

The prefill itself runs every layer through PyTorch's scaled_dot_product_attention (exactly the model's causal
attention; layers with logit softcapping use the reference attention). Each policy run decodes on its own
copy of the prefill cache; `decode` stacks several runs in one batch so the model's weights are read once per
step for all of them (`RowSplit`).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from workbench.sparse.reference import repeat_kv

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models.cache import KVCache
    from workbench.models.lm import LM
    from workbench.sparse.integration import SparseAttention


@dataclass
class DensePrefill:
    """A prompt processed densely: its cache, each layer's queries and softmax scale, the last logits."""

    ids: Tensor  # [B, P]
    cache: KVCache
    queries: list[Tensor]  # per layer [B, H, P, D] (after RoPE)
    scalings: list[float]
    logits: Tensor  # [B, V]: next-token logits after the prompt

    @property
    def length(self) -> int:
        return int(self.ids.shape[1])

    @property
    def batch(self) -> int:
        return int(self.ids.shape[0])


def as_batch(ids: Sequence[int] | Sequence[Sequence[int]] | Tensor) -> Tensor:
    """Token ids as a LongTensor [B, T] (a flat list is one row); rows must have equal length."""
    t = ids if isinstance(ids, Tensor) else torch.as_tensor(ids, dtype=torch.long)
    if t.dim() == 1:
        t = t[None]
    if t.dim() != 2 or t.shape[1] == 0 or t.is_floating_point():
        raise ValueError(f"ids must be token ids [T] or [B, T] with T >= 1, got shape {list(t.shape)}")
    return t.long()


def dense_prefill(lm: LM, ids: Sequence[int] | Sequence[Sequence[int]] | Tensor) -> DensePrefill:
    """Run the prompt(s) `ids` ([T] or [B, T]) densely, keeping the cache and every layer's queries."""
    ids = as_batch(ids)
    if ids.shape[1] > lm.max_context:
        raise ValueError(f"ids: {ids.shape[1]} tokens exceed the model's context of {lm.max_context} tokens")
    queries: dict[int, Tensor] = {}
    scalings: dict[int, float] = {}

    def capture(query, key, value, *, layer_idx, scaling, attention_mask, module=None):
        from workbench.models.attention import reference_attention

        queries[layer_idx], scalings[layer_idx] = query, scaling
        if getattr(module, "attn_logit_softcapping", None) is not None:
            return reference_attention(query, key, value, scaling=scaling, attention_mask=attention_mask,
                                       module=module)
        g = query.shape[1] // key.shape[1]
        if attention_mask is None:
            return torch.nn.functional.scaled_dot_product_attention(
                query, repeat_kv(key, g), repeat_kv(value, g), is_causal=True, scale=scaling)
        return torch.nn.functional.scaled_dot_product_attention(
            query, repeat_kv(key, g), repeat_kv(value, g), attn_mask=attention_mask.to(query.dtype), scale=scaling)

    cache = lm.new_cache()
    with lm.attention(capture):
        logits = lm.forward(ids, cache=cache).logits[:, -1].clone()  # not a view pinning [B, P, V]
    layers = range(lm.num_layers)
    return DensePrefill(ids=ids, cache=cache, queries=[queries[i] for i in layers],
                        scalings=[scalings[i] for i in layers], logits=logits)


def causal_probs(queries: Tensor, keys: Tensor, scaling: float, rows: slice) -> Tensor:
    """Causal softmax attention of prompt rows `rows` over all P prompt keys: [B, H, len(rows), P] (fp32).

    queries [B, H, P, D], keys [B, H_kv, P, D] (query i sees keys 0..i)."""
    p = keys.shape[2]
    q = queries[:, :, rows].float()
    k = repeat_kv(keys.float(), queries.shape[1] // keys.shape[1])
    logits = torch.matmul(q, k.transpose(-1, -2)) * scaling
    qpos = torch.arange(p, device=q.device)[rows].view(-1, 1)
    logits = logits.masked_fill(torch.arange(p, device=q.device).view(1, -1) > qpos, float("-inf"))
    return logits.softmax(-1)


def causal_probs_block(queries: Tensor, keys: Tensor, scaling: float, lo: int, hi: int) -> Tensor:
    """`causal_probs` of prompt rows lo..hi-1 cut to the keys they can see: [B, H, hi - lo, hi] (fp32).

    The columns >= hi, which `causal_probs` fills with zeros, are left out (the observing policies accept a
    probability block narrower than the prompt), which halves the work over a whole prompt. Same numbers:
    the logits come from one matmul per KV head over its query heads (no repeated keys), the causal mask
    touches only the block's last `hi - lo` columns, and the softmax is the same row softmax."""
    b, h, _, d = queries.shape
    h_kv = keys.shape[1]
    g, t = h // h_kv, hi - lo
    q = queries[:, :, lo:hi].float().reshape(b, h_kv, g * t, d)
    logits = torch.matmul(q, keys[:, :, :hi].float().transpose(-1, -2)).mul_(scaling).view(b, h_kv, g, t, hi)
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)  # row lo + i sees keys <= lo + i
    logits[..., lo:].masked_fill_(future, float("-inf"))
    return logits.softmax(-1).view(b, h, t, hi)


def start_policies(prefill: DensePrefill, attns: Sequence[SparseAttention], chunk: int = 256) -> None:
    """Put each SparseAttention at the end of the prefill: per layer its LayerState, and for policies that
    learn from attention the prefill probabilities observed (computed once per row chunk for all of them).

    What a policy learns from the prefill does not depend on its budget, so among runs of the same policy with
    the same parameters only the first observes; the others start from a deep copy of its memory (all layers
    copied together, so objects shared across layers, like SpAtten's cascade, stay shared). Likewise policies
    whose prefill-time decision is budget-free and made from the prompt's queries (a `prepare(state)` method:
    SnapKV's votes, Zero-TPrune's PageRank, FASA's calibration) make it once per layer, for the first run of
    the group, and the others share the result (read-only tensors) instead of recomputing it at their first
    decode step."""
    if chunk < 2:
        raise ValueError(f"chunk must be >= 2 rows (a 1-row call means a decode step to Keyformer), got {chunk}")
    p = prefill.length
    leaders: dict[str, SparseAttention] = {}
    followers: list[tuple[SparseAttention, SparseAttention]] = []
    for a in attns:
        if a.selector.needs_observe or callable(getattr(a.selector, "prepare", None)):
            key = f"{type(a.selector).__qualname__}:{ {k: v for k, v in a.selector.params().items() if k != 'budget'} }"
            if key in leaders:
                followers.append((a, leaders[key]))
            else:
                leaders[key] = a
    observing = {id(a) for a in leaders.values() if a.selector.needs_observe}
    for layer, (q, scaling) in enumerate(zip(prefill.queries, prefill.scalings)):
        keys = prefill.cache.keys(layer)
        states = [a.start_from_prefill(layer, q, keys, scaling) for a in attns]
        for a in leaders.values():
            if id(a) not in observing:
                a.selector.prepare(a.states[layer])
        observers = [(a, s) for a, s in zip(attns, states) if id(a) in observing]
        if not observers:
            continue
        starts = list(range(0, p, chunk))
        if len(starts) > 1 and p - starts[-1] < 2:  # no 1-row last chunk
            starts.pop()
        for i, lo in enumerate(starts):
            hi = starts[i + 1] if i + 1 < len(starts) else p
            probs = causal_probs_block(q, keys, scaling, lo, hi)
            for attn, state in observers:
                attn.selector.observe(state, probs)
    for attn, leader in followers:
        layers = sorted(leader.states)
        if id(leader) in observing:
            memories = copy.deepcopy([leader.states[i].memory for i in layers])
        else:
            memories = [dict(leader.states[i].memory) for i in layers]
        for i, memory in zip(layers, memories):
            attn.states[i].memory = memory


class RowSplit:
    """One attention function over a batch that stacks several runs: rows [r*n, (r+1)*n) belong to run r, each a
    `SparseAttention` with its own policy and state. The model's weights are then read once per decode step for
    all runs (on CPU the matrix-vector products dominate a small model's decode step)."""

    def __init__(self, attns: Sequence[SparseAttention], rows_per_run: int):
        self.attns, self.n = list(attns), rows_per_run

    def __call__(self, query, key, value, *, layer_idx, scaling, attention_mask, module=None):
        outs = []
        for r, attn in enumerate(self.attns):
            rows = slice(r * self.n, (r + 1) * self.n)
            mask = attention_mask
            if mask is not None and mask.shape[0] != 1:
                mask = mask[rows]
            out = attn(query[rows], key[rows], value[rows], layer_idx=layer_idx, scaling=scaling,
                       attention_mask=mask, module=module)
            outs.append(out[0] if isinstance(out, tuple) else out)
        return torch.cat(outs, 0)


def repeat_cache(cache: KVCache, times: int) -> KVCache:
    """A new cache holding `times` copies of every batch row of `cache` (copy r of row b at row r*B + b)."""
    out = cache.clone()
    for layer in out.hf.layers:
        if layer.is_initialized and layer.keys is not None:
            layer.keys = layer.keys.repeat(times, 1, 1, 1)
            layer.values = layer.values.repeat(times, 1, 1, 1)
    if out.positions is not None and out.positions.shape[0] > 1:
        out.positions = out.positions.repeat(times, 1)
    return out


def decode(lm: LM, attns: SparseAttention | Sequence[SparseAttention], prefill: DensePrefill, steps: int,
           tokens: Tensor | None = None, progress=None) -> tuple[Tensor, Tensor]:
    """Decode `steps` tokens after the prefill under each SparseAttention (already started with
    `start_policies`), all runs stacked in one batch (`RowSplit`) on a copy of the prefill cache.

    tokens [B, steps]: teacher forcing (feed tokens[:, i] at step i, the same for every run); None: greedy (each
    run feeds its own argmax, starting from the prefill's prediction).
    Returns (fed tokens [R, B, steps], logits [R, B, steps, V]) for the R runs. progress: a tqdm bar advanced
    by R per step.
    """
    attns = [attns] if not isinstance(attns, Sequence) else list(attns)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if prefill.length + steps > lm.max_context:
        raise ValueError(f"steps: {prefill.length} + {steps} tokens exceed the model's context of {lm.max_context}")
    if tokens is not None and (tokens.dim() != 2 or tuple(tokens.shape) != (prefill.batch, steps)):
        raise ValueError(f"tokens must be [B, steps] = [{prefill.batch}, {steps}], got {list(tokens.shape)}")
    r, b = len(attns), prefill.batch
    cache = repeat_cache(prefill.cache, r)
    fn = attns[0] if r == 1 else RowSplit(attns, b)
    fed, out = [], []
    nxt = prefill.logits.argmax(-1).repeat(r)
    with lm.attention(fn):
        for i in range(steps):
            tok = tokens[:, i].repeat(r) if tokens is not None else nxt
            logits = lm.forward(tok.view(-1, 1), cache=cache).logits[:, -1]
            fed.append(tok)
            out.append(logits)
            nxt = logits.argmax(-1)
            if progress is not None:
                progress.update(r)
    fed_t = torch.stack(fed, 1).view(r, b, steps)
    return fed_t, torch.stack(out, 1).view(r, b, steps, -1)
