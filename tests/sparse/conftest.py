import pytest
import torch


def make_qkv(seed: int = 0, batch: int = 2, heads: int = 6, kv_heads: int = 2, context: int = 40, dim: int = 8,
             prefill: int = 0, dtype=torch.float32):
    """Seeded random decode-step tensors: query [B,H,D], keys/values [B,H_kv,S,D], prefill queries [B,H,P,D]."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, dim, generator=g).to(dtype)
    k = torch.randn(batch, kv_heads, context, dim, generator=g).to(dtype)
    v = torch.randn(batch, kv_heads, context, dim, generator=g).to(dtype)
    pq = torch.randn(batch, heads, prefill, dim, generator=g).to(dtype) if prefill else None
    return q, k, v, pq


@pytest.fixture
def qkv():
    return make_qkv


def every_layer_sparse(name: str) -> dict:
    """Selector params that make a policy select in every layer (Quest, as in its paper, keeps layers 0-1 dense)."""
    return {"dense_layers": 0} if name == "quest" else {}
