"""Shared inputs for the kernel tests: random decode-attention cases and a brute-force dense answer."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch


@dataclass
class Case:
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    indices: torch.Tensor
    lengths: torch.Tensor | None

    def args(self) -> tuple:
        return self.q, self.k, self.v, self.indices, self.lengths


def make_case(batch: int = 2, heads: int = 6, kv_heads: int = 2, seq: int = 64, head_dim: int = 64,
              list_len: int = 27, ragged: bool = False, dtype: torch.dtype = torch.float32,
              device: str = "cpu", seed: int = 0) -> Case:
    """Random q/k/v and duplicate-free index lists (random positions, random order) of length list_len.

    ragged=True draws lengths in [0, K] and forces a 0 and a K among them when there are enough lists.
    """
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, head_dim, generator=gen)
    k = torch.randn(batch, kv_heads, seq, head_dim, generator=gen)
    v = torch.randn(batch, kv_heads, seq, head_dim, generator=gen)
    indices = torch.stack([torch.randperm(seq, generator=gen)[:list_len] for _ in range(batch * kv_heads)])
    indices = indices.reshape(batch, kv_heads, list_len)
    lengths = None
    if ragged:
        lengths = torch.randint(0, list_len + 1, (batch, kv_heads), generator=gen)
        flat = lengths.view(-1)
        if flat.numel() >= 3:
            flat[0], flat[1] = 0, list_len
    cast = lambda t: t.to(device=device, dtype=dtype)
    return Case(cast(q), cast(k), cast(v), indices.to(device),
                None if lengths is None else lengths.to(device))


def dense_attention_bruteforce(case: Case, scale: float | None = None) -> torch.Tensor:
    """Attention of each query head over ALL S cached positions in float64, with positions outside the head's
    list removed by a boolean mask and counted as often as they appear in it. Loops per (b, h): slow, plain."""
    q, k, v = (t.detach().cpu().double() for t in (case.q, case.k, case.v))
    batch, heads, head_dim = q.shape
    kv_heads, seq = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    out = torch.zeros(batch, heads, head_dim, dtype=torch.float64)
    for b in range(batch):
        for h in range(heads):
            g = h // (heads // kv_heads)
            n = case.indices.shape[2] if case.lengths is None else int(case.lengths[b, g])
            count = torch.zeros(seq, dtype=torch.float64)
            for position in case.indices[b, g, :n].tolist():
                count[position] += 1
            if n == 0:
                continue
            scores = (k[b, g] @ q[b, h]) * scale
            scores = scores.masked_fill(count == 0, float("-inf"))
            weights = count * torch.exp(scores - scores.max())
            out[b, h] = (weights / weights.sum()) @ v[b, g]
    return out


@pytest.fixture
def case_factory():
    return make_case


@pytest.fixture
def bruteforce():
    return dense_attention_bruteforce
