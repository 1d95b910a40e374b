"""Custom attention masks for `LM.forward` (tree attention, arbitrary visibility patterns).

A caller-provided mask covers the T new tokens (rows) against every key slot (columns): S = cache.length + T,
the cached slots first, then the new tokens in the order fed. Accepted forms:
- boolean [T, S] or [B, 1, T, S]: True = may attend;
- float [T, S] or [B | 1, 1, T, S]: additive (0 = attend, a large negative number = masked).
It is converted to an additive float mask [B | 1, 1, T, S] in the model's dtype, which transformers passes as-is
to every layer's attention. Causality is NOT added: the mask is the whole visibility pattern.

Tree attention (SpecInfer, Medusa): feed the tree's nodes as one chunk over a cached prefix, with
position_ids = prefix_length + depth(node) and a mask in which each node sees the prefix, its ancestors and itself.

Sliding-window layers (e.g. Gemma 3's local layers) get the mask ANDed with their window, measured in position
ids (key visible iff query position - key position < window) while the cache knows the position of every slot
(see KVCache.positions), else in cache slots as transformers does.
"""
from __future__ import annotations

import torch


def to_additive_mask(mask: torch.Tensor, batch: int, new: int, total: int, dtype: torch.dtype,
                     device: torch.device) -> torch.Tensor:
    """Validate a caller's mask and return it as an additive float mask [B | 1, 1, new, total]."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"attention_mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim == 2:
        mask = mask[None, None]
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, batch) or tuple(mask.shape[2:]) != (new, total):
        raise ValueError(
            f"attention_mask must have shape [T, S] = [{new}, {total}] or [B, 1, T, S] with B in (1, {batch}) "
            f"(S = cache length + new tokens), got {tuple(mask.shape)}"
        )
    mask = mask.to(device)
    if mask.dtype == torch.bool:
        zero = torch.zeros((), dtype=dtype, device=device)
        return torch.where(mask, zero, torch.finfo(dtype).min)
    if not mask.is_floating_point():
        raise ValueError(f"attention_mask must be boolean (True = attend) or an additive float mask, got {mask.dtype}")
    return mask.to(dtype)


def sliding_window_mask(mask: torch.Tensor, window: int, query_positions: torch.Tensor | None = None,
                        key_positions: torch.Tensor | None = None) -> torch.Tensor:
    """AND an additive mask [B | 1, 1, T, S] with a sliding window: key visible iff q - k < window.

    q and k are position ids (query_positions [B | 1, T], key_positions [B | 1, S]) when given, else cache slots
    (query slot = S - T + row, key slot = column).
    """
    new, total = mask.shape[-2:]
    if query_positions is None or key_positions is None:
        q = torch.arange(total - new, total, device=mask.device)[None, :]
        k = torch.arange(total, device=mask.device)[None, :]
    else:
        q, k = query_positions.to(mask.device), key_positions.to(mask.device)
    outside = (q[:, None, :, None] - k[:, None, None, :]) >= window
    return mask.masked_fill(outside, torch.finfo(mask.dtype).min)


def causal_mask(new: int, total: int, dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """The plain causal additive mask [1, 1, new, total] for `new` tokens fed after total - new cached slots."""
    q_slot = torch.arange(total - new, total, device=device)[:, None]
    k_slot = torch.arange(total, device=device)[None, :]
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(k_slot <= q_slot, zero, torch.finfo(dtype).min)[None, None]


def tree_mask(parents: list[int], prefix: int, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Mask and position ids for a token tree fed after `prefix` cached tokens.

    parents[i] is the index of node i's parent within the tree (-1 for a child of the last prefix token);
    parents must come before children. Returns (additive mask [1, 1, n, prefix + n], position_ids [1, n]).
    """
    n = len(parents)
    visible = torch.zeros(n, prefix + n, dtype=torch.bool)
    visible[:, :prefix] = True
    depth = [0] * n
    for i, p in enumerate(parents):
        if not -1 <= p < i:
            raise ValueError(f"tree_mask: parents[{i}] must be -1 or an earlier node index (< {i}), got {p}")
        if p >= 0:
            visible[i] = visible[p]
            depth[i] = depth[p] + 1
        visible[i, prefix + i] = True
    zero = torch.zeros((), dtype=dtype)
    mask = torch.where(visible, zero, torch.finfo(dtype).min)[None, None].to(device)
    positions = (prefix + torch.tensor(depth, dtype=torch.long, device=device))[None]
    return mask, positions
