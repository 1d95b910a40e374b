"""Plain-PyTorch decode attention, dense and restricted to a selection: the meaning every kernel must match.

Shapes (GQA): query [B, H, D] (one decode step), keys/values [B, H_kv, S, D] un-repeated, indices [B, H_kv, K]
(per KV head, cache positions; PAD = -1 entries are ignored). Query head h reads KV head h // (H / H_kv).
Math runs in fp32; the output has the query's dtype.
"""
from __future__ import annotations

import torch
from torch import Tensor

from workbench.sparse.ranking import PAD


def check_shapes(query: Tensor, keys: Tensor, values: Tensor | None = None) -> tuple[int, int, int, int, int]:
    """Validate decode-attention shapes; returns (B, H, H_kv, S, D)."""
    if query.dim() != 3:
        raise ValueError(f"query must be [B, H, D], got shape {list(query.shape)}")
    if keys.dim() != 4:
        raise ValueError(f"keys must be [B, H_kv, S, D], got shape {list(keys.shape)}")
    if values is not None and values.shape != keys.shape:
        raise ValueError(f"values shape {list(values.shape)} != keys shape {list(keys.shape)}")
    b, h, d = query.shape
    _, h_kv, s, dk = keys.shape
    if keys.shape[0] != b or dk != d:
        raise ValueError(f"query [B={b}, H={h}, D={d}] does not match keys {list(keys.shape)}")
    if h_kv == 0 or h % h_kv:
        raise ValueError(f"num_heads ({h}) must be a multiple of num_kv_heads ({h_kv})")
    return b, h, h_kv, s, d


def repeat_kv(x: Tensor, group_size: int) -> Tensor:
    """[B, H_kv, S, D] -> [B, H_kv * group_size, S, D], KV head g serving query heads g*group .. g*group+group-1."""
    b, h_kv, s, d = x.shape
    return x[:, :, None].expand(b, h_kv, group_size, s, d).reshape(b, h_kv * group_size, s, d)


def attention_probs(query: Tensor, keys: Tensor, scaling: float | None = None) -> Tensor:
    """Full softmax attention of each query head over all cached keys: [B, H, S] (fp32)."""
    b, h, h_kv, s, d = check_shapes(query, keys)
    scale = d ** -0.5 if scaling is None else scaling
    q = query.float().reshape(b, h_kv, h // h_kv, d)
    logits = torch.einsum("bgqd,bgsd->bgqs", q, keys.float()) * scale
    return logits.softmax(-1).reshape(b, h, s)


def dense_attention(query: Tensor, keys: Tensor, values: Tensor, scaling: float | None = None) -> Tensor:
    """Full decode attention [B, H, D]."""
    b, h, h_kv, s, d = check_shapes(query, keys, values)
    probs = attention_probs(query, keys, scaling).reshape(b, h_kv, h // h_kv, s)
    out = torch.einsum("bgqs,bgsd->bgqd", probs, values.float())
    return out.reshape(b, h, d).to(query.dtype)


def check_indices(indices: Tensor, batch: int, num_kv_heads: int, context_len: int) -> None:
    """Raise ValueError unless indices is a [B, H_kv, K] integer tensor of positions in [0, S) or PAD."""
    if indices.dim() != 3 or indices.shape[0] != batch or indices.shape[1] != num_kv_heads:
        raise ValueError(f"indices must be [B, H_kv, K] = [{batch}, {num_kv_heads}, K], got {list(indices.shape)}")
    if indices.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"indices must be int32 or int64, got {indices.dtype}")
    if indices.shape[2] == 0 or ((indices != PAD) & ((indices < 0) | (indices >= context_len))).any():
        raise ValueError(f"indices must be cache positions in [0, {context_len}) (or {PAD} as padding)")
    if (indices == PAD).all(-1).any():
        raise ValueError("every KV head must select at least one position")


def sparse_attention(
    query: Tensor,
    keys: Tensor,
    values: Tensor,
    indices: Tensor,
    scaling: float | None = None,
    return_probs: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Decode attention restricted to the selected positions: softmax over the selected keys only.

    Returns the output [B, H, D]; with return_probs=True also the probabilities scattered back to [B, H, S]
    (zero at positions not selected), the input an `observe()` hook expects (after unsqueeze(2)).
    """
    b, h, h_kv, s, d = check_shapes(query, keys, values)
    check_indices(indices, b, h_kv, s)
    g = h // h_kv
    scale = d ** -0.5 if scaling is None else scaling
    idx = indices.long()
    valid = idx != PAD
    safe = idx.clamp(min=0)
    gather = safe.unsqueeze(-1).expand(b, h_kv, idx.shape[2], d)
    k_sel = keys.float().gather(2, gather)
    v_sel = values.float().gather(2, gather)
    q = query.float().reshape(b, h_kv, g, d)
    logits = torch.einsum("bgqd,bgkd->bgqk", q, k_sel) * scale
    probs = logits.masked_fill(~valid.unsqueeze(2), float("-inf")).softmax(-1)
    out = torch.einsum("bgqk,bgkd->bgqd", probs, v_sel).reshape(b, h, d).to(query.dtype)
    if not return_probs:
        return out
    dense = probs.new_zeros(b, h_kv, g, s + 1)
    slot = torch.where(valid, safe, torch.full_like(safe, s)).unsqueeze(2).expand(b, h_kv, g, idx.shape[2])
    dense.scatter_(-1, slot, probs)
    return out, dense[..., :s].reshape(b, h, s)
