"""The CuPy tree attention kernel on a real GPU, against the PyTorch reference (run on the CPU).

Needs a CUDA build of torch and CuPy (`pip install -e ".[test,gpu]"`); skipped otherwise. Run with
`python -m pytest tests/kernels -m gpu -q`. Tolerances: fp32 1e-5 (absolute and relative); fp16/bf16 1e-2
relative (+1e-3 absolute), i.e. one output rounding apart, since both sides accumulate in fp32.
"""
import pytest
import torch
from test_tree_attention_emulated import make_case

from workbench.kernels import (
    KernelFallbackWarning,
    cupy_available,
    cupy_unavailable_reason,
    decide,
    tree_attention,
    tree_attention_cupy,
    tree_attention_reference,
)

_GPU = torch.cuda.is_available() and cupy_available()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _GPU, reason="needs a CUDA device, a CUDA build of torch and CuPy: "
                       + ("torch sees no CUDA device" if not torch.cuda.is_available() else str(cupy_unavailable_reason()))),
]
OP = "tree_attention"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float16: dict(rtol=1e-2, atol=1e-3),
       torch.bfloat16: dict(rtol=1e-2, atol=1e-3)}


def _check(out, args, scale=None):
    expected = tree_attention_reference(*(a.cpu() for a in args), scale)
    assert out.is_cuda and out.dtype == expected.dtype and out.shape == expected.shape
    torch.testing.assert_close(out.cpu().float(), expected.float(), **TOL[expected.dtype])


@pytest.mark.parametrize("seq", [27, 61, 1110, 3330])
@pytest.mark.parametrize("head_dim", [64, 128, 256])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("heads,kv_heads,nodes", [(6, 2, 9), (9, 3, 1), (32, 8, 26), (14, 2, 5)])
def test_kernel_matches_the_reference(seq, head_dim, dtype, heads, kv_heads, nodes):
    args = [a.cuda() for a in make_case(batch=2, heads=heads, kv_heads=kv_heads, nodes=nodes, seq=seq,
                                        head_dim=head_dim, dtype=dtype, seed=seq + head_dim)]
    _check(tree_attention(*args, backend="cupy"), args)


@pytest.mark.parametrize("num_splits", [1, 2, 5, 16, 61])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_forced_split_counts_agree(num_splits, dtype):
    args = [a.cuda() for a in make_case(batch=2, heads=8, kv_heads=2, nodes=13, seq=61, dtype=dtype)]
    _check(tree_attention_cupy(*args, num_splits=num_splits), args)


def test_large_scores_strided_cache_and_scale():
    q, k, v, mask = (a.cuda() for a in make_case(batch=2, heads=4, kv_heads=2, nodes=16, seq=1110, seed=5))
    q = q * 30.0
    big_k = torch.zeros(2, 2, 2048, 64, device="cuda")
    big_k[:, :, :1110] = k
    k = big_k[:, :, :1110]
    out = tree_attention(q, k, v, mask, 0.2, backend="cupy")
    assert torch.isfinite(out).all()
    _check(out, (q, k, v, mask), 0.2)


def test_auto_chooses_the_kernel_on_cuda_and_the_float64_fallback_warns():
    args = [a.cuda() for a in make_case(dtype=torch.float16)]
    assert decide(OP, *args).backend == "cupy"
    assert torch.equal(tree_attention(*args), tree_attention(*args, backend="cupy"))
    args64 = [a.cuda() for a in make_case(dtype=torch.float64)]
    with pytest.warns(KernelFallbackWarning):
        _check(tree_attention(*args64, backend="cupy"), args64)

