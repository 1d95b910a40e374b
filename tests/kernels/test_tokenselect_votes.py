"""tokenselect_votes: the reference against brute force and the TokenSelect policy's votes, checks, fallback."""
import importlib
import math

import pytest
import torch

from workbench.kernels import KernelFallbackWarning, decide, get_op, tokenselect_votes
from workbench.kernels.tokenselect_votes import (
    KERNEL_DTYPES,
    VOTE_NAME,
    name_expressions,
)
from workbench.sparse.policies.tokenselect import TokenSelect
from workbench.sparse.selector import LayerState

dispatch_module = importlib.import_module("workbench.kernels.dispatch")


def make_inputs(batch=2, heads=6, kv_heads=2, seq=61, head_dim=16, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, head_dim, generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, seq, head_dim, generator=gen).to(dtype)
    return q, k


def bruteforce(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Loops per (b, h) in float64: softmax over all keys of the head's KV head, added into that KV head's row."""
    batch, heads, dim = q.shape
    kv_heads, seq = k.shape[1], k.shape[2]
    scale = 1 / math.sqrt(dim) if scale is None else scale
    votes = torch.zeros(batch, kv_heads, seq, dtype=torch.float64)
    for b in range(batch):
        for h in range(heads):
            g = h // (heads // kv_heads)
            logits = (k[b, g].double() @ q[b, h].double()) * scale
            weights = torch.exp(logits - logits.max())
            votes[b, g] += weights / weights.sum()
    return votes


@pytest.mark.parametrize("heads,kv_heads", [(6, 2), (9, 3), (4, 4), (8, 1)])
def test_reference_matches_bruteforce(heads, kv_heads):
    q, k = make_inputs(heads=heads, kv_heads=kv_heads, seq=61, seed=heads)
    votes = tokenselect_votes(q, k)
    assert votes.dtype == torch.float32 and votes.shape == (2, kv_heads, 61)
    torch.testing.assert_close(votes.double(), bruteforce(q, k), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(votes.sum(-1), torch.full((2, kv_heads), heads / kv_heads), rtol=1e-5, atol=0)


def test_scale_and_half_inputs():
    q, k = make_inputs(seq=27, dtype=torch.bfloat16, seed=2)
    torch.testing.assert_close(tokenselect_votes(q, k, 0.7).double(), bruteforce(q, k, 0.7), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_identical_to_the_policy_votes(dtype):
    q, k = make_inputs(batch=1, heads=9, kv_heads=3, seq=333, head_dim=64, dtype=dtype, seed=3)
    state = LayerState(query=q, keys=k)
    expected = TokenSelect(budget=16).votes(state)
    assert torch.equal(tokenselect_votes(q, k, state.scale), expected)


@pytest.mark.parametrize("call,message", [
    (lambda q, k: tokenselect_votes(q[0], k), r"query must be a non-empty \[B, H, D\] tensor"),
    (lambda q, k: tokenselect_votes(q, k[0]), r"keys must be a non-empty \[B, H_kv, S, D\] tensor"),
    (lambda q, k: tokenselect_votes(q[:, :5], k), "H=5 must be a multiple of KV heads H_kv=2"),
    (lambda q, k: tokenselect_votes(q.half(), k), "must share one floating dtype"),
    (lambda q, k: tokenselect_votes(q[..., :8], k), r"keys must be \[B=2, H_kv, S, D=8\]"),
    (lambda q, k: tokenselect_votes(q, k, 0.0), "scale must be a finite positive number"),
    (lambda q, k: tokenselect_votes(q, k, float("nan")), "scale must be a finite positive number"),
])
def test_bad_arguments_are_refused(call, message):
    q, k = make_inputs(seq=20)
    with pytest.raises(ValueError, match=message):
        call(q, k)


def test_registered_once_per_instantiation():
    op = get_op("tokenselect_votes")
    assert op.source == "tokenselect_votes"
    assert len(op.instantiations) == len(set(op.instantiations)) == 3 * 3 + 1
    assert all(set(name_expressions(dtype)) <= set(op.instantiations) for dtype in KERNEL_DTYPES)
    assert VOTE_NAME in op.instantiations


@pytest.fixture
def pretend_gpu(monkeypatch):
    monkeypatch.setattr(dispatch_module, "_on_cuda", lambda args, kwargs: True)
    monkeypatch.setattr(dispatch_module, "cupy_unavailable_reason", lambda: None)


@pytest.mark.parametrize("backend", ["auto", "cupy"])
def test_what_the_kernel_lacks_falls_back_with_a_warning(pretend_gpu, backend):
    q, k = make_inputs(seq=30, head_dim=64, dtype=torch.float64)
    with pytest.warns(KernelFallbackWarning, match="dtype torch.float64"):
        votes = tokenselect_votes(q, k, backend=backend)
    torch.testing.assert_close(votes.double(), bruteforce(q, k), rtol=1e-5, atol=1e-7)
    q32, k32 = make_inputs(seq=30, head_dim=48)
    with pytest.warns(KernelFallbackWarning, match=r"head_dim 48; the kernel has \[64, 128, 256\]"):
        tokenselect_votes(q32, k32, backend=backend)
    q_big, k_big = make_inputs(heads=80, kv_heads=1, seq=30, head_dim=64)
    with pytest.warns(KernelFallbackWarning, match="80 query heads per KV head"):
        tokenselect_votes(q_big, k_big, backend=backend)
    for dtype in KERNEL_DTYPES:
        assert decide("tokenselect_votes", q.to(dtype), k.to(dtype)).backend == "cupy"
