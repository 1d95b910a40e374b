"""Index bookkeeping shared by the policies: lexicographic top-k, masks <-> index lists, GQA group sums.

Selections are LongTensors [B, H_kv, K]: per KV head the chosen cache positions in ascending order. When
heads get different budgets (per-head budgets) K is the largest count and shorter rows end in PAD (-1).
"""
from __future__ import annotations

import torch
from torch import Tensor

PAD = -1


def top_k_lex(k_per_head: list[int], shape: tuple[int, int, int], *keys: Tensor) -> Tensor:
    """Per KV head, the `k_per_head[g]` positions that rank highest by the keys, compared lexicographically.

    shape: (B, H_kv, S). keys: tensors broadcastable to it, most significant first, higher is better. Ties after
    the last key go to the lower position (stable sorts). Returns sorted indices [B, H_kv, max(k)], PAD-padded.
    """
    b, h_kv, s = shape
    if len(k_per_head) != h_kv:
        raise ValueError(f"k_per_head has {len(k_per_head)} entries for {h_kv} KV heads")
    device = keys[0].device
    order = torch.arange(s, device=device).expand(b, h_kv, s)
    for key in reversed(keys):  # least significant first; stable sorts keep earlier orderings on ties
        if key.dtype == torch.bool:
            key = key.to(torch.int8)
        vals = key.expand(shape).gather(-1, order)
        perm = torch.sort(vals, dim=-1, descending=True, stable=True).indices
        order = order.gather(-1, perm)
    k_max = max(k_per_head)
    top = order[..., :k_max].clone()
    ks = torch.tensor(k_per_head, device=device).view(1, h_kv, 1)
    top[torch.arange(k_max, device=device).view(1, 1, -1).expand_as(top) >= ks] = PAD
    return sort_indices(top)


def sort_indices(indices: Tensor) -> Tensor:
    """Sort each row ascending, keeping PAD entries at the end."""
    big = torch.iinfo(indices.dtype).max
    keyed = torch.where(indices == PAD, torch.full_like(indices, big), indices)
    keyed = keyed.sort(dim=-1).values
    return torch.where(keyed == big, torch.full_like(keyed, PAD), keyed)


def indices_to_mask(indices: Tensor, context_len: int) -> Tensor:
    """[B, H_kv, K] indices (PAD allowed) -> bool mask [B, H_kv, S]."""
    mask = torch.zeros(*indices.shape[:-1], context_len + 1, dtype=torch.bool, device=indices.device)
    safe = torch.where(indices == PAD, torch.full_like(indices, context_len), indices)
    mask.scatter_(-1, safe, True)
    return mask[..., :context_len]


def mask_to_indices(mask: Tensor) -> Tensor:
    """bool mask [B, H_kv, S] -> sorted indices [B, H_kv, max count], PAD-padded."""
    counts = mask.sum(-1)
    k_max = int(counts.max().item()) if mask.numel() else 0
    pos = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
    keyed = torch.where(mask, pos, torch.full_like(pos, PAD))
    return sort_indices(keyed.sort(dim=-1, descending=True).values[..., :k_max])


def all_positions(batch: int, num_kv_heads: int, context_len: int, device: torch.device | str) -> Tensor:
    """The selection of every cached position: [B, H_kv, S]."""
    return torch.arange(context_len, device=device).expand(batch, num_kv_heads, context_len).clone()


def group_sum(per_query_head: Tensor, num_kv_heads: int) -> Tensor:
    """[B, H, ...] -> [B, H_kv, ...]: sum over the query heads that share a KV head (h // group_size)."""
    b, h = per_query_head.shape[:2]
    return per_query_head.reshape(b, num_kv_heads, h // num_kv_heads, *per_query_head.shape[2:]).sum(2)


def group_max(per_query_head: Tensor, num_kv_heads: int) -> Tensor:
    """[B, H, ...] -> [B, H_kv, ...]: max over the query heads that share a KV head."""
    b, h = per_query_head.shape[:2]
    return per_query_head.reshape(b, num_kv_heads, h // num_kv_heads, *per_query_head.shape[2:]).amax(2)


def to_lengths(indices: Tensor) -> tuple[Tensor, Tensor]:
    """A selection as (indices with PAD replaced by 0, lengths [B, H_kv]): the list + length form of the kernels."""
    lengths = (indices != PAD).sum(-1)
    return indices.clamp(min=0), lengths


def count_selected(indices: Tensor) -> int:
    """Number of real (non-PAD) entries in a selection, over batch and heads."""
    return int((indices != PAD).sum().item())
