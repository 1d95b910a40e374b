"""FASA: a few dominant RoPE frequency chunks score every token cheaply; exact attention on the top tokens.

Paper: "FASA" (cited in the project's issue 6 as a 2026 paper; its text could not be found offline, 2026).
The issue's description: dominant RoPE frequency chunks, found by a calibration pass, score the tokens cheaply,
and exact attention runs on the chosen ones. Interpretation implemented here: with rotary embeddings
q.k = sum over frequencies f of the 2-D dot product of the (q, k) pair rotated at frequency f, and a few
frequency bands carry most of that sum. A calibration pass measures, per KV head, how much each chunk of
`chunk_size` consecutive frequencies contributes, mean |q_c . k_c| over (query, earlier key) pairs; the top
`frequency_fraction` of the chunks are the dominant ones. At each decode step tokens are scored by the logits
restricted to those dimensions (reading only that part of every key), softmaxed per query head and summed over
the KV head's group, and the top-k are read in full (the exact attention is the driver's masked / gathered step).

Conventions: RoPE dims in the HF "rotate_half" layout (frequency i rotates dims i and i + D/2; Llama, Qwen2,
Gemma). The calibration pass is the prompt: at the first decode step the chunk dominance is measured on
`LayerState.prefill_queries` against the prompt keys (causal pairs) and kept for the sequence; without prompt
queries the current query calibrates. Scored fraction of the keys: chosen dims / D.
Simplification: a prompt longer than `max_calibration_rows` (default 512) calibrates on that many query rows,
evenly spaced and including the last, each against all the keys it sees (`calibration_rows`; None: every
row). The measure is a mean over pairs, so this is a sample of about 512 * P / 2 of the P^2 / 2 pairs: at
P = 4096 it still averages over ~10^6 pairs per head and chunk, enough to rank a handful of chunks, while the
full pass cost ~40 s per layer on one CPU core (the perplexity benchmark calibrates 30 layers per text).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.sparse.ranking import group_sum, top_k_lex
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState, Selector


def chunk_dims(head_dim: int, chunk_size: int) -> list[list[int]]:
    """The dimensions of each frequency chunk (rotate_half layout): chunk c holds frequencies
    c*chunk_size .. and each frequency i owns dims i and i + D/2."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    half = head_dim // 2
    return [[i for f in range(lo, min(lo + chunk_size, half)) for i in (f, f + half)]
            for lo in range(0, half, chunk_size)]


def calibration_rows(t: int, limit: int | None) -> Tensor | None:
    """The prompt rows FASA calibrates on: None (all) when t <= limit or limit is None, else `limit` rows evenly
    spaced over 0..t-1, the last row included."""
    if limit is None or t <= limit:
        return None
    return torch.linspace(t - 1, 0, limit).round().long().flip(0).unique()


def chunk_dominance(queries: Tensor, keys: Tensor, chunk_size: int, causal: bool = True,
                    rows: Tensor | None = None, block_elements: int = 1 << 24) -> Tensor:
    """Mean |q_c . k_c| per frequency chunk c over (query, key) pairs, summed over each KV head's query heads.

    queries [B, H, T, D] (the last T positions of the keys when causal), keys [B, H_kv, S, D] -> [B, H_kv, C].
    rows: ascending query rows to use (None: all T); with causal pairs each row i pairs with keys
    0..S - T + i. Exact over those pairs, computed in blocks of query rows (about `block_elements` partial
    products per block) with one batched matmul per block for every chunk (each chunk's dims gathered and
    zero-padded to the widest chunk) over only the keys the block's rows can see; `chunk_dominance_reference`
    is the straightforward per-chunk computation over the full [T, S] pair matrix."""
    b, h, t, d = queries.shape
    h_kv, s = keys.shape[1], keys.shape[2]
    g = h // h_kv
    rows = torch.arange(t) if rows is None else rows.cpu()
    chunks = chunk_dims(d, chunk_size)
    c, w = len(chunks), max(len(x) for x in chunks)
    index = torch.tensor([x + [d] * (w - len(x)) for x in chunks], device=queries.device)  # dim d: a zero pad
    q = queries[:, :, rows.to(queries.device)].float()
    q = torch.cat([q, q.new_zeros(*q.shape[:-1], 1)], -1)[..., index]
    q = q.reshape(b, h_kv, g, len(rows), c, w).permute(0, 1, 4, 2, 3, 5)  # [B, H_kv, C, g, rows, w]
    k = torch.cat([keys.float(), keys.new_zeros(b, h_kv, s, 1, dtype=torch.float32)], -1)[..., index]
    k = k.permute(0, 1, 3, 4, 2)  # [B, H_kv, C, w, S]
    pos = (rows + (s - t)).tolist() if causal else [s - 1] * len(rows)  # the last key each row sees
    step = max(1, block_elements // max(1, b * h * c * s))
    total = torch.zeros(b, h_kv, c, dtype=torch.float64, device=queries.device)
    for lo in range(0, len(rows), step):
        hi = min(len(rows), lo + step)
        n, first, visible = hi - lo, pos[lo], pos[hi - 1] + 1
        block = torch.matmul(q[..., lo:hi, :].reshape(b, h_kv, c, g * n, w), k[..., :visible]).abs_()
        block = block.view(b, h_kv, c, g, n, visible)
        if visible > first + 1:  # keys after the block's first row: hidden from the rows before them
            later = torch.arange(first + 1, visible, device=q.device).view(1, -1)
            block[..., first + 1:].masked_fill_(later > torch.tensor(pos[lo:hi], device=q.device).view(-1, 1), 0.0)
        total += block.sum((3, 4, 5), dtype=torch.float64)
    pairs = sum(x + 1 for x in pos)
    return (total / pairs).float()


def chunk_dominance_reference(queries: Tensor, keys: Tensor, chunk_size: int, causal: bool = True) -> Tensor:
    """`chunk_dominance` by the definition: per chunk, |q_c . k_c| over the full [T, S] pair matrix, masked."""
    b, h, t, d = queries.shape
    h_kv, s = keys.shape[1], keys.shape[2]
    q = queries.float().reshape(b, h_kv, h // h_kv, t, d)
    k = keys.float()
    out = []
    valid = torch.ones(t, s, dtype=torch.bool, device=q.device)
    if causal:
        valid = torch.arange(s, device=q.device).view(1, -1) <= torch.arange(s - t, s, device=q.device).view(-1, 1)
    for dims in chunk_dims(d, chunk_size):
        part = torch.einsum("bgqtd,bgsd->bgqts", q[..., dims], k[..., dims]).abs()
        out.append((part * valid).sum((-1, -2)) / valid.sum())
    return torch.stack(out, -1).sum(2)


@register_selector("fasa")
@dataclass
class FASA(Selector):
    """Top tokens by logits over the calibrated dominant RoPE frequency chunks."""

    chunk_size: int = 4
    frequency_fraction: float = 0.25
    max_calibration_rows: int | None = 512

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {self.chunk_size!r}")
        if isinstance(self.frequency_fraction, bool) or not 0 < self.frequency_fraction <= 1:
            raise ValueError(f"frequency_fraction must be in (0, 1], got {self.frequency_fraction!r}")
        m = self.max_calibration_rows
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValueError(f"max_calibration_rows must be an int >= 1 or None (every row), got {m!r}")

    def dominant_chunks(self, state: LayerState) -> Tensor:
        """Indices [B, H_kv, n] of the dominant chunks (calibrated once per sequence, kept in memory)."""
        chosen = state.memory.get("fasa.chunks")
        if chosen is None:
            pq = state.prefill_queries
            if pq is not None:
                rows = calibration_rows(pq.shape[2], self.max_calibration_rows)
                dom = chunk_dominance(pq, state.keys[:, :, : pq.shape[2]], self.chunk_size, rows=rows)
            else:
                dom = chunk_dominance(state.query.unsqueeze(2), state.keys, self.chunk_size)
            n = max(1, math.ceil(self.frequency_fraction * dom.shape[-1] - 1e-9))
            chosen = state.memory["fasa.chunks"] = dom.argsort(dim=-1, descending=True, stable=True)[..., :n]
        return chosen

    def prepare(self, state: LayerState) -> None:
        """The prefill-time (budget-free) part: the calibration, kept in `state.memory`."""
        self.dominant_chunks(state)

    def dim_mask(self, state: LayerState) -> Tensor:
        """Bool [B, H_kv, D]: the dimensions scored for each KV head."""
        chunks = chunk_dims(state.head_dim, self.chunk_size)
        table = torch.zeros(len(chunks), state.head_dim, dtype=torch.bool, device=state.keys.device)
        for c, dims in enumerate(chunks):
            table[c, dims] = True
        return table[self.dominant_chunks(state)].any(-2)

    def select(self, state: LayerState) -> Tensor:
        dims = self.dim_mask(state).float()  # [B, H_kv, D]
        q = state.query.float().reshape(state.batch, state.num_kv_heads, state.group_size, state.head_dim)
        logits = torch.einsum("bgqd,bgsd->bgqs", q * dims.unsqueeze(2), state.keys.float()) * state.scale
        votes = group_sum(logits.softmax(-1).reshape(state.batch, state.num_heads, -1), state.num_kv_heads)
        return top_k_lex(self.k_per_head(state), state.kv_shape, votes)

    def extra_bytes(self, state: LayerState, elem_bytes: int) -> int:
        used = int(self.dim_mask(state).sum().item())  # dims read, summed over batch and KV heads
        return used * state.context_len * elem_bytes
