"""The CuPy kernels of topk_select, quest_page_bounds / quest_page_scores and tokenselect_votes on a real GPU,
against their PyTorch references run on the CPU.

Needs a CUDA build of torch and CuPy (`pip install -e ".[test,gpu]"`); skipped otherwise. Run with
`python -m pytest tests/kernels -m gpu -q`. Tolerances:
- topk_select: exact (the tie rule makes the selected set unique).
- quest_page_bounds: exact (min and max copy stored values).
- quest_page_scores: rtol 1e-5, atol 1e-4 (fp32 sums of D products in another order).
- tokenselect_votes: rtol 1e-5, atol 1e-6 (fp32; exp2 of log2-scaled logits, other summation order).
"""
import pytest
import torch

from workbench.kernels import (
    KernelFallbackWarning,
    cupy_available,
    cupy_unavailable_reason,
    decide,
    quest_page_bounds,
    quest_page_scores,
    tokenselect_votes,
    topk_select,
)
from workbench.kernels.quest_pages import (
    quest_page_bounds_reference,
    quest_page_scores_reference,
)
from workbench.kernels.tokenselect_votes import (
    tokenselect_votes_cupy,
    tokenselect_votes_reference,
)
from workbench.kernels.topk_select import topk_select_cupy, topk_select_reference

_GPU = torch.cuda.is_available() and cupy_available()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _GPU, reason="needs a CUDA device, a CUDA build of torch and CuPy: "
                       + ("torch sees no CUDA device" if not torch.cuda.is_available() else str(cupy_unavailable_reason()))),
]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
LENGTHS = [27, 61, 1110, 3330]


def _inputs(batch, heads, kv_heads, seq, head_dim, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, head_dim, generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, seq, head_dim, generator=gen).to(dtype)
    return q, k


@pytest.mark.parametrize("ties", ["lower", "higher"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seq", [*LENGTHS, 32768])
def test_topk_matches_the_reference(seq, dtype, ties):
    gen = torch.Generator().manual_seed(seq)
    scores = torch.randn(2, 8, seq, generator=gen)
    scores[:, :4] = (scores[:, :4] * 2).round()  # half the rows with heavy ties
    scores = scores.to(dtype)
    ks = [1, seq // 16 + 1, seq // 2, seq, 0, 3, min(seq, 2048), seq - 1]
    out = topk_select(scores.cuda(), ks, ties, backend="cupy")
    assert out.is_cuda and torch.equal(out.cpu(), topk_select_reference(scores, ks, ties))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seq", LENGTHS)
@pytest.mark.parametrize("heads,kv_heads,head_dim,page_size", [(9, 3, 64, 16), (32, 8, 128, 16), (4, 4, 96, 7)])
def test_quest_matches_the_reference(seq, dtype, heads, kv_heads, head_dim, page_size):
    q, k = _inputs(2, heads, kv_heads, seq, head_dim, dtype, seed=seq + head_dim)
    kmin, kmax = quest_page_bounds(k.cuda(), page_size, backend="cupy")
    rmin, rmax = quest_page_bounds_reference(k, page_size)
    assert torch.equal(kmin.cpu(), rmin) and torch.equal(kmax.cpu(), rmax)
    scores = quest_page_scores(q.cuda(), kmin, kmax, backend="cupy")
    torch.testing.assert_close(scores.cpu(), quest_page_scores_reference(q, rmin, rmax), rtol=1e-5, atol=1e-4)


def test_quest_strided_cache():
    _, k = _inputs(1, 4, 2, 300, 64, torch.float32, seed=1)
    big = torch.randn(1, 2, 512, 64)
    big[:, :, :300] = k
    kmin, kmax = quest_page_bounds(big.cuda()[:, :, :300], 16, backend="cupy")
    rmin, rmax = quest_page_bounds_reference(k, 16)
    assert torch.equal(kmin.cpu(), rmin) and torch.equal(kmax.cpu(), rmax)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seq", LENGTHS)
@pytest.mark.parametrize("heads,kv_heads,head_dim", [(9, 3, 64), (32, 8, 128), (8, 1, 256)])
def test_tokenselect_votes_match_the_reference(seq, dtype, heads, kv_heads, head_dim):
    q, k = _inputs(2, heads, kv_heads, seq, head_dim, dtype, seed=seq + heads)
    votes = tokenselect_votes(q.cuda(), k.cuda(), backend="cupy")
    torch.testing.assert_close(votes.cpu(), tokenselect_votes_reference(q, k), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_splits", [1, 2, 7, 61])
def test_tokenselect_forced_splits_and_large_logits(num_splits):
    q, k = _inputs(1, 6, 2, 1110, 64, torch.float32, seed=num_splits)
    q *= 30.0
    votes = tokenselect_votes_cupy(q.cuda(), k.cuda(), num_splits=num_splits)
    assert torch.isfinite(votes).all()
    torch.testing.assert_close(votes.cpu(), tokenselect_votes_reference(q, k), rtol=1e-4, atol=1e-6)


def test_topk_realistic_shape_and_auto_choice():
    scores = torch.rand(1, 8, 32768, device="cuda")
    assert decide("topk_select", scores, 2048).backend == "cupy"
    out = topk_select(scores, 2048)
    assert torch.equal(out.cpu(), topk_select_reference(scores.cpu(), 2048))
    assert torch.equal(topk_select_cupy(scores, 2048), out)


@pytest.mark.parametrize("dtype", [torch.float64], ids=str)
def test_what_the_kernels_lack_falls_back_with_a_warning(dtype):
    q, k = _inputs(1, 4, 2, 61, 64, dtype, seed=3)
    q, k = q.cuda(), k.cuda()
    with pytest.warns(KernelFallbackWarning):
        out = topk_select(k[..., 0], 5, backend="cupy")
    assert torch.equal(out.cpu(), topk_select_reference(k[..., 0].cpu(), 5))
    with pytest.warns(KernelFallbackWarning):
        kmin, kmax = quest_page_bounds(k, 8)
    with pytest.warns(KernelFallbackWarning):
        quest_page_scores(q, kmin, kmax)
    with pytest.warns(KernelFallbackWarning):
        votes = tokenselect_votes(q, k)
    torch.testing.assert_close(votes.cpu(), tokenselect_votes_reference(q.cpu(), k.cpu()), rtol=1e-6, atol=1e-8)
    with pytest.warns(KernelFallbackWarning, match="head_dim 96"):
        tokenselect_votes(q[..., :48].float().repeat(1, 1, 2), k[..., :48].float().repeat(1, 1, 1, 2))
