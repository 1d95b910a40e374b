"""quest_page_bounds / quest_page_scores: references against brute force, the policy's formulas, checks, fallback."""
import importlib

import pytest
import torch

from workbench.kernels import (
    KernelFallbackWarning,
    decide,
    get_op,
    quest_page_bounds,
    quest_page_scores,
)
from workbench.kernels.quest_pages import KERNEL_DTYPES, name_expressions
from workbench.sparse.policies.quest import page_bounds, page_upper_bound
from workbench.sparse.ranking import group_max

dispatch_module = importlib.import_module("workbench.kernels.dispatch")


def make_inputs(batch=2, heads=6, kv_heads=2, seq=61, head_dim=16, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, head_dim, generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, seq, head_dim, generator=gen).to(dtype)
    return q, k


def bruteforce(q: torch.Tensor, k: torch.Tensor, page_size: int):
    """Plain loops in float64: per page the channel-wise min/max of its valid keys; per KV head the max over its
    query heads of sum_d max(q_d * min_d, q_d * max_d)."""
    batch, heads, dim = q.shape
    kv_heads, seq = k.shape[1], k.shape[2]
    pages = -(-seq // page_size)
    kd, qd = k.double(), q.double()
    kmin = torch.empty(batch, kv_heads, pages, dim, dtype=torch.float64)
    kmax = torch.empty_like(kmin)
    score = torch.full((batch, kv_heads, pages), float("-inf"), dtype=torch.float64)
    for b in range(batch):
        for g in range(kv_heads):
            for p in range(pages):
                rows = kd[b, g, p * page_size:min(seq, (p + 1) * page_size)]
                for d in range(dim):
                    kmin[b, g, p, d] = min(rows[:, d].tolist())
                    kmax[b, g, p, d] = max(rows[:, d].tolist())
                for h in range(g * (heads // kv_heads), (g + 1) * (heads // kv_heads)):
                    bound = sum(max(qd[b, h, d] * kmin[b, g, p, d], qd[b, h, d] * kmax[b, g, p, d]) for d in range(dim))
                    score[b, g, p] = max(score[b, g, p], float(bound))
    return kmin, kmax, score


@pytest.mark.parametrize("seq,page_size", [(27, 16), (61, 7), (61, 61), (40, 1), (5, 16)])
def test_references_match_bruteforce(seq, page_size):
    q, k = make_inputs(seq=seq, seed=seq + page_size)
    kmin, kmax = quest_page_bounds(k, page_size)
    bmin, bmax, bscore = bruteforce(q, k, page_size)
    assert kmin.dtype == k.dtype and torch.equal(kmin.double(), bmin) and torch.equal(kmax.double(), bmax)
    torch.testing.assert_close(quest_page_scores(q, kmin, kmax).double(), bscore, rtol=1e-5, atol=1e-5)


def test_the_score_bounds_every_key_of_the_page():
    q, k = make_inputs(seq=64, seed=3)
    scores = quest_page_scores(q, *quest_page_bounds(k, 8))  # [B, H_kv, 8]
    dots = torch.einsum("bgqd,bgsd->bgqs", q.reshape(2, 2, 3, 16), k).amax(2)  # best head per key
    assert (dots.reshape(2, 2, 8, 8).amax(-1) <= scores + 1e-5).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_identical_to_the_quest_policy_formulas(dtype):
    q, k = make_inputs(seq=1110, head_dim=64, dtype=dtype, seed=4)
    kmin, kmax = quest_page_bounds(k, 16)
    pmin, pmax = page_bounds(k, 16)
    assert torch.equal(kmin.float(), pmin) and torch.equal(kmax.float(), pmax)
    expected = group_max(page_upper_bound(q, pmin, pmax), 2)
    assert torch.equal(quest_page_scores(q, kmin, kmax), expected)


def test_fp16_bounds_keep_the_stored_values():
    q, k = make_inputs(seq=61, dtype=torch.float16, seed=5)
    kmin, kmax = quest_page_bounds(k, 7)
    assert kmin.dtype == torch.float16
    bmin, bmax, _ = bruteforce(q, k, 7)
    assert torch.equal(kmin.double(), bmin) and torch.equal(kmax.double(), bmax)


@pytest.mark.parametrize("call,message", [
    (lambda q, k: quest_page_bounds(k[0], 4), r"keys must be a non-empty \[B, H_kv, S, D\] tensor"),
    (lambda q, k: quest_page_bounds(k.int(), 4), "keys must have a floating dtype"),
    (lambda q, k: quest_page_bounds(k, 0), "page_size must be an int >= 1, got 0"),
    (lambda q, k: quest_page_bounds(k, 2.0), "page_size must be an int >= 1"),
    (lambda q, k: quest_page_scores(q[:, :5], *quest_page_bounds(k, 4)), "H=5 must be a multiple of KV heads H_kv=2"),
    (lambda q, k: quest_page_scores(q.half(), *quest_page_bounds(k, 4)), "must share one floating dtype"),
    (lambda q, k: quest_page_scores(q[..., :8], *quest_page_bounds(k, 4)), r"kmin must be \[B=2, H_kv, P, D=8\]"),
    (lambda q, k: quest_page_scores(q, *quest_page_bounds(k, 4)[:1], quest_page_bounds(k, 8)[1]),
     "kmax must have the shape of kmin"),
])
def test_bad_arguments_are_refused(call, message):
    q, k = make_inputs(seq=20)
    with pytest.raises(ValueError, match=message):
        call(q, k)


def test_both_ops_are_registered_on_one_source():
    for op in ("quest_page_bounds", "quest_page_scores"):
        assert get_op(op).source == "quest_pages"
    names = set(get_op("quest_page_bounds").instantiations) | set(get_op("quest_page_scores").instantiations)
    assert names == {n for dtype in KERNEL_DTYPES for n in name_expressions(dtype)}


@pytest.fixture
def pretend_gpu(monkeypatch):
    monkeypatch.setattr(dispatch_module, "_on_cuda", lambda args, kwargs: True)
    monkeypatch.setattr(dispatch_module, "cupy_unavailable_reason", lambda: None)


@pytest.mark.parametrize("backend", ["auto", "cupy"])
def test_a_dtype_the_kernel_lacks_falls_back_with_a_warning(pretend_gpu, backend):
    q, k = make_inputs(seq=30, dtype=torch.float64)
    with pytest.warns(KernelFallbackWarning, match="quest_page_bounds.*dtype torch.float64"):
        kmin, kmax = quest_page_bounds(k, 8, backend=backend)
    with pytest.warns(KernelFallbackWarning, match="quest_page_scores.*dtype torch.float64"):
        scores = quest_page_scores(q, kmin, kmax, backend=backend)
    bmin, bmax, bscore = bruteforce(q, k, 8)
    assert torch.equal(kmin, bmin) and torch.equal(kmax, bmax)
    torch.testing.assert_close(scores.double(), bscore, rtol=1e-6, atol=1e-6)
    for dtype in KERNEL_DTYPES:
        assert decide("quest_page_bounds", k.to(dtype), 8).backend == "cupy"
        assert decide("quest_page_scores", q.to(dtype), kmin.to(dtype), kmax.to(dtype)).backend == "cupy"


def test_inputs_requiring_grad_use_the_differentiable_reference(pretend_gpu):
    q, k = make_inputs(seq=30, head_dim=64)
    k.requires_grad_(True)
    with pytest.warns(KernelFallbackWarning, match="require grad"):
        kmin, kmax = quest_page_bounds(k, 8)
    with pytest.warns(KernelFallbackWarning, match="require grad"):
        scores = quest_page_scores(q, kmin, kmax)
    scores.sum().backward()
    assert k.grad is not None and torch.isfinite(k.grad).all()
    with torch.no_grad():
        assert decide("quest_page_bounds", k, 8).backend == "cupy"
