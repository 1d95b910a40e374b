"""KV cache: a thin wrapper over transformers' DynamicCache with the edits research needs.

Every layer keeps keys and values of shape [B, H_kv, S, D] (un-repeated KV heads, rotary embedding already
applied). Every layer holds every cached position, also for sliding-window layers (the window is applied by the
attention mask, as transformers does for a plain DynamicLayer), so that all layers always have the same length.

Edits, all in place (each returns the cache for chaining):
- `crop(n)` keeps the first n positions (speculative decoding rollback).
- `gather(indices)` keeps, for every layer and KV head, the positions listed (KV eviction, e.g. H2O, SnapKV).
  Keys keep the rotary phase of their original position, so after an eviction the caller must pass explicit
  `position_ids` to `LM.forward` (the default continues from `cache.length`, which no longer equals the next
  position).
- `clone()` copies every tensor.
- `expand(batch)` returns a new cache repeating a batch-1 cache `batch` times (views: no copy), e.g. to run B
  different continuations after one shared prompt.

`KVTraffic` counts the KV-cache bytes forward passes write and read (`LM.kv_traffic`; definition there).

`positions` [B, S] records the position id of every cached slot (kept through crop and through gathers that
keep the same slots in every layer and head; None once heads keep different slots). Sliding-window layers use
it to measure their window in positions under custom masks (tree attention) and after evictions.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


@dataclass
class KVTraffic:
    """KV-cache bytes written and read by forward passes (`LM.forward` records every call).

    With b = bytes one position takes in every layer (layers x 2 (K and V) x H_kv x head_dim x dtype size), a
    forward of B rows feeding T new tokens over a cache holding P positions counts
        written += B * T * b         the new tokens' keys and values, appended in every layer;
        read    += B * (P + T) * b   every visible key and value read once per forward, as a fused attention
                                     kernel streams them (the queries of one forward share the read).
    This is the traffic of the cache itself, not of the attention arithmetic (a non-fused kernel rereads K/V
    per query block). Sliding-window layers are counted like full layers (an upper bound), and a cache after
    `gather` counts the positions it still holds. Reusing a cached prefix costs reads but no writes: that is
    the saving KV reuse brings.
    """

    written: int = 0
    read: int = 0

    def record(self, batch: int, new: int, past: int, bytes_per_position: int) -> None:
        self.written += batch * new * bytes_per_position
        self.read += batch * (past + new) * bytes_per_position

    def reset(self) -> None:
        self.written = 0
        self.read = 0

    def snapshot(self) -> KVTraffic:
        """A copy of the current values (subtract two snapshots to measure a region of code)."""
        return KVTraffic(self.written, self.read)

    def __sub__(self, other: KVTraffic) -> KVTraffic:
        return KVTraffic(self.written - other.written, self.read - other.read)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class KVCache:
    """The KV cache of one `LM` (see the module docstring)."""

    def __init__(self, num_layers: int, hf_cache: DynamicCache | None = None):
        if hf_cache is None:
            hf_cache = DynamicCache()
            hf_cache.layers = [DynamicLayer() for _ in range(num_layers)]
            hf_cache.layer_class_to_replicate = None
        if len(hf_cache.layers) != num_layers:
            raise ValueError(f"hf_cache has {len(hf_cache.layers)} layers, the model has {num_layers}")
        for i, layer in enumerate(hf_cache.layers):
            if type(layer) is not DynamicLayer:
                raise ValueError(
                    f"KVCache wraps caches of plain DynamicLayer only; layer {i} is {type(layer).__name__}"
                )
        self.hf = hf_cache
        self.num_layers = num_layers
        self.positions: torch.Tensor | None = None if hf_cache.get_seq_length() else torch.zeros(1, 0, dtype=torch.long)

    # ---- reading -------------------------------------------------------------------------------------------
    @property
    def length(self) -> int:
        """Number of cached positions (the same in every layer)."""
        return self.hf.layers[0].get_seq_length() if self.num_layers else 0

    @property
    def batch_size(self) -> int | None:
        """Batch size of the cached tensors, None while empty."""
        layer = self.hf.layers[0]
        return None if not layer.is_initialized or layer.keys is None else int(layer.keys.shape[0])

    def keys(self, layer: int) -> torch.Tensor | None:
        """Keys of one layer, [B, H_kv, S, D] (None before the first forward)."""
        return self.hf.layers[layer].keys

    def values(self, layer: int) -> torch.Tensor | None:
        """Values of one layer, [B, H_kv, S, D] (None before the first forward)."""
        return self.hf.layers[layer].values

    @property
    def nbytes(self) -> int:
        """Bytes held by all cached keys and values."""
        total = 0
        for layer in self.hf.layers:
            if layer.is_initialized and layer.keys is not None:
                total += layer.keys.numel() * layer.keys.element_size()
                total += layer.values.numel() * layer.values.element_size()
        return total

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"KVCache(layers={self.num_layers}, length={self.length}, batch={self.batch_size})"

    # ---- editing -------------------------------------------------------------------------------------------
    def crop(self, n: int) -> KVCache:
        """Keep the first `n` positions of every layer (0 <= n <= length)."""
        length = self.length
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= length:
            raise ValueError(f"crop: n must be an int in [0, {length}] (the cache length), got {n!r}")
        for layer in self.hf.layers:
            if layer.is_initialized and layer.keys is not None:
                layer.keys = layer.keys[:, :, :n, :]
                layer.values = layer.values[:, :, :n, :]
        if self.positions is not None:
            self.positions = self.positions[:, :n]
        return self

    def gather(self, indices: torch.Tensor | Sequence[torch.Tensor]) -> KVCache:
        """Keep, per layer and KV head, the positions in `indices` (in the order given).

        `indices` is one of: a tensor [B, H_kv, K] used for every layer; a sequence of num_layers such tensors;
        a tensor [num_layers, B, H_kv, K]; or a tensor [K] (the same positions for every layer and head).
        K must be the same for every layer. Each index must lie in [0, length).
        """
        length = self.length
        batch = self.batch_size
        if batch is None:
            raise ValueError("gather: the cache is empty; run a forward pass first")
        heads = self.hf.layers[0].keys.shape[1]
        per_layer = self._per_layer_indices(indices, batch, heads)
        for i, idx in enumerate(per_layer):
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= length):
                raise ValueError(
                    f"gather: indices for layer {i} must lie in [0, {length}) (the cache length), "
                    f"got values in [{int(idx.min())}, {int(idx.max())}]"
                )
        for layer, idx in zip(self.hf.layers, per_layer):
            idx = idx.to(layer.keys.device)
            expanded = idx.unsqueeze(-1).expand(-1, -1, -1, layer.keys.shape[-1])
            layer.keys = torch.gather(layer.keys, 2, expanded)
            expanded = idx.unsqueeze(-1).expand(-1, -1, -1, layer.values.shape[-1])
            layer.values = torch.gather(layer.values, 2, expanded)
        first = per_layer[0]
        shared = all(torch.equal(idx, first) for idx in per_layer) and bool((first == first[:, :1]).all())
        if self.positions is not None and shared:
            self.positions = torch.gather(self.positions.expand(batch, -1), 1, first[:, 0].to(self.positions.device))
        else:
            self.positions = None
        return self

    def clear(self) -> KVCache:
        """Drop every cached position (the cache is then as new)."""
        for layer in self.hf.layers:
            layer.reset()
        self.positions = torch.zeros(1, 0, dtype=torch.long)
        return self

    def record_positions(self, positions: torch.Tensor) -> None:
        """Append the position ids [B | 1, T] of tokens just fed (called by LM.forward)."""
        if self.positions is None:
            return
        batch = max(self.positions.shape[0], positions.shape[0])
        self.positions = torch.cat(
            [self.positions.to(positions.device).expand(batch, -1), positions.expand(batch, -1)], dim=1
        )

    def _per_layer_indices(self, indices, batch: int, heads: int) -> list[torch.Tensor]:
        if isinstance(indices, torch.Tensor):
            if indices.dtype in (torch.bool,) or indices.is_floating_point():
                raise ValueError(f"gather: indices must be an integer tensor, got dtype {indices.dtype}")
            if indices.ndim == 1:
                per_layer = [indices.view(1, 1, -1).expand(batch, heads, -1)] * self.num_layers
            elif indices.ndim == 3:
                per_layer = [indices] * self.num_layers
            elif indices.ndim == 4:
                per_layer = list(indices.unbind(0))
            else:
                raise ValueError(
                    "gather: indices must have shape [K], [B, H_kv, K] or [num_layers, B, H_kv, K], "
                    f"got {tuple(indices.shape)}"
                )
        else:
            per_layer = list(indices)
        if len(per_layer) != self.num_layers:
            raise ValueError(f"gather: need indices for {self.num_layers} layers, got {len(per_layer)}")
        ks = set()
        for i, idx in enumerate(per_layer):
            if not isinstance(idx, torch.Tensor) or idx.ndim != 3 or tuple(idx.shape[:2]) != (batch, heads):
                shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
                raise ValueError(f"gather: indices for layer {i} must have shape [{batch}, {heads}, K], got {shape}")
            ks.add(int(idx.shape[-1]))
        if len(ks) > 1:
            raise ValueError(f"gather: every layer must keep the same number of positions K, got {sorted(ks)}")
        return [idx.long() for idx in per_layer]

    def expand(self, batch: int) -> KVCache:
        """A new cache whose `batch` rows all repeat this batch-1 cache (this cache is left as it is).

        The rows are views of the same tensors (no copy). That is safe with every edit here and with
        `LM.forward`, which all build new tensors (a forward appends by concatenation, so it never writes into
        the shared storage); call `clone()` on the result for rows you mean to modify in place. An empty cache
        gives an empty cache; a cache that already has `batch` rows gives an independent wrapper of the same
        tensors.
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"expand: batch must be an int >= 1, got {batch!r}")
        current = self.batch_size
        if current not in (None, 1, batch):
            raise ValueError(f"expand: only a batch-1 cache can be expanded; this one has {current} rows "
                             f"(asked for {batch})")
        out = KVCache(self.num_layers)
        if current is None:
            return out
        for src, dst in zip(self.hf.layers, out.hf.layers):
            if src.is_initialized and src.keys is not None:
                dst.lazy_initialization(src.keys, src.values)
                dst.keys = src.keys.expand(batch, -1, -1, -1)
                dst.values = src.values.expand(batch, -1, -1, -1)
        out.positions = None if self.positions is None else self.positions.clone()
        return out

    def clone(self) -> KVCache:
        """An independent copy (every tensor cloned)."""
        copy = KVCache(self.num_layers)
        for src, dst in zip(self.hf.layers, copy.hf.layers):
            if src.is_initialized and src.keys is not None:
                dst.lazy_initialization(src.keys, src.values)
                dst.keys = src.keys.clone()
                dst.values = src.values.clone()
        copy.positions = None if self.positions is None else self.positions.clone()
        return copy
