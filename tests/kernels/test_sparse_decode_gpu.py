"""The CuPy kernel of sparse decode attention on a real GPU, against the PyTorch reference (run on the CPU).

Needs a CUDA build of torch and CuPy (`pip install -e ".[test,gpu]"`); skipped otherwise. Run with
`python -m pytest tests/kernels -m gpu -q`. Tolerances: fp32 1e-5 (absolute and relative); fp16/bf16 1e-2
relative (+1e-3 absolute), i.e. one output rounding apart, since both sides accumulate in fp32.
"""
import pytest
import torch

from workbench.kernels import (
    KernelFallbackWarning,
    cupy_available,
    cupy_module,
    cupy_unavailable_reason,
    decide,
    sparse_decode_attention,
    sparse_decode_attention_cupy,
    sparse_decode_attention_reference,
)

_GPU = torch.cuda.is_available() and cupy_available()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _GPU, reason="needs a CUDA device, a CUDA build of torch and CuPy: "
                       + ("torch sees no CUDA device" if not torch.cuda.is_available() else str(cupy_unavailable_reason()))),
]
OP = "sparse_decode_attention"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float16: dict(rtol=1e-2, atol=1e-3),
       torch.bfloat16: dict(rtol=1e-2, atol=1e-3)}


def _on_gpu(case):
    case.q, case.k, case.v, case.indices = (t.cuda() for t in (case.q, case.k, case.v, case.indices))
    case.lengths = None if case.lengths is None else case.lengths.cuda()
    return case


def _reference_on_cpu(*args, **kwargs):
    cpu = [a.cpu() if isinstance(a, torch.Tensor) else a for a in args]
    return sparse_decode_attention_reference(*cpu, **kwargs)


def _check(out, expected):
    assert out.is_cuda and out.dtype == expected.dtype and out.shape == expected.shape
    torch.testing.assert_close(out.cpu().float(), expected.float(), **TOL[expected.dtype])


@pytest.mark.parametrize("list_len", [27, 61, 1110, 3330])
@pytest.mark.parametrize("head_dim", [64, 128, 256])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("heads,kv_heads,ragged", [(6, 2, True), (9, 3, False), (32, 8, True), (14, 2, False)])
def test_kernel_matches_the_reference(case_factory, list_len, head_dim, dtype, heads, kv_heads, ragged):
    case = _on_gpu(case_factory(batch=2, heads=heads, kv_heads=kv_heads, seq=list_len + 100, head_dim=head_dim,
                                list_len=list_len, ragged=ragged, dtype=dtype, seed=list_len + head_dim))
    out = sparse_decode_attention(*case.args(), backend="cupy")
    _check(out, _reference_on_cpu(*case.args()))


@pytest.mark.parametrize("num_splits", [1, 2, 5, 16, 61])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_forced_split_counts_agree(case_factory, num_splits, dtype):
    case = _on_gpu(case_factory(batch=2, heads=8, kv_heads=2, seq=200, list_len=61, ragged=True, dtype=dtype))
    out = sparse_decode_attention_cupy(*case.args(), num_splits=num_splits)
    _check(out, _reference_on_cpu(*case.args()))


def test_large_realistic_shape_bf16(case_factory):
    case = _on_gpu(case_factory(batch=1, heads=32, kv_heads=8, seq=32768, head_dim=128, list_len=4096,
                                dtype=torch.bfloat16, seed=3))
    _check(sparse_decode_attention(*case.args()), _reference_on_cpu(*case.args()))


def test_strided_cache_int32_indices_and_scale(case_factory):
    case = _on_gpu(case_factory(batch=2, heads=4, kv_heads=2, seq=300, list_len=1110 // 5, seed=9))
    big_k = torch.randn(2, 2, 512, 64, device="cuda")
    big_v = torch.randn(2, 2, 512, 64, device="cuda")
    big_k[:, :, :300], big_v[:, :, :300] = case.k, case.v
    k, v = big_k[:, :, :300], big_v[:, :, :300]
    assert not k.is_contiguous()
    out = sparse_decode_attention(case.q, k, v, case.indices.int(), None, 0.2, backend="cupy")
    _check(out, _reference_on_cpu(case.q, k, v, case.indices, None, 0.2))


@pytest.mark.parametrize("num_splits", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_output_rounds_to_nearest_even(case_factory, dtype, num_splits):
    case = _on_gpu(case_factory(batch=1, heads=2, kv_heads=2, seq=300, list_len=2, dtype=dtype, seed=1))
    case.q.zero_()  # equal weights: each output is the exact mean of two stored values (often a tie)
    out = sparse_decode_attention_cupy(*case.args(), num_splits=num_splits)
    rows = torch.stack([case.v[0, g, case.indices[0, g]].float().mean(0) for g in range(2)])[None]
    assert torch.equal(out, rows.to(dtype))


def test_empty_lists_and_large_scores(case_factory):
    case = _on_gpu(case_factory(batch=2, heads=4, kv_heads=2, seq=4000, list_len=3330, ragged=True, seed=2))
    case.q *= 40.0
    out = sparse_decode_attention(*case.args(), backend="cupy")
    assert torch.isfinite(out).all()
    assert torch.all(out[(case.lengths == 0).repeat_interleave(2, dim=1)] == 0)
    _check(out, _reference_on_cpu(*case.args()))


def test_auto_chooses_the_kernel_on_cuda_and_agrees_with_it(case_factory):
    case = _on_gpu(case_factory(dtype=torch.float16, list_len=61, seq=100))
    assert decide(OP, *case.args()).backend == "cupy"
    torch.testing.assert_close(sparse_decode_attention(*case.args()),
                               sparse_decode_attention(*case.args(), backend="cupy"), rtol=0, atol=0)


@pytest.mark.parametrize("options", [dict(dtype=torch.float64), dict(head_dim=96)], ids=["float64", "head_dim96"])
def test_what_the_kernel_lacks_falls_back_with_a_warning(case_factory, options):
    case = _on_gpu(case_factory(**options))
    with pytest.warns(KernelFallbackWarning):
        out = sparse_decode_attention(*case.args(), backend="cupy")
    _check(out, _reference_on_cpu(*case.args()))


def test_runs_on_torchs_current_stream(case_factory):
    case = case_factory(batch=4, heads=16, kv_heads=4, seq=8192, head_dim=128, list_len=3330, seed=5)
    expected = _reference_on_cpu(*case.args())
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        case = _on_gpu(case)  # copies queued on `stream`; no sync before the launch
        out = sparse_decode_attention(*case.args(), backend="cupy", check_indices=False)
        result = out.to("cpu", non_blocking=False)
    stream.synchronize()
    torch.testing.assert_close(result, expected, **TOL[torch.float32])


def test_dlpack_hand_off_is_zero_copy():
    for dtype in DTYPES:
        t = torch.arange(12, device="cuda").to(dtype).reshape(3, 4)[:, 1:]
        array = cupy_module.to_cupy(t)
        assert array.data.ptr == t.data_ptr() and array.shape == (3, 3)
        back = cupy_module.to_torch(array)
        assert back.data_ptr() == t.data_ptr()


def test_modules_are_compiled_once_per_dtype_and_device(case_factory):
    case = _on_gpu(case_factory(dtype=torch.float16))
    sparse_decode_attention(*case.args(), backend="cupy")
    key = (OP, "float16", cupy_module.compute_capability(case.q.device), case.q.device.index or 0)
    assert key in cupy_module.compiled_modules()
    module = cupy_module._modules[key]
    sparse_decode_attention(*case_factory(dtype=torch.float16, head_dim=128, seed=1).args(), backend="reference")
    sparse_decode_attention(*_on_gpu(case_factory(dtype=torch.float16, head_dim=128, seed=1)).args(), backend="cupy")
    assert cupy_module._modules[key] is module



def test_inputs_requiring_grad_use_the_differentiable_reference(case_factory):
    case = _on_gpu(case_factory(list_len=61, seq=100))
    case.q.requires_grad_(True)
    with pytest.warns(KernelFallbackWarning, match="require grad"):
        out = sparse_decode_attention(*case.args())
    out.sum().backward()
    assert case.q.grad is not None and torch.isfinite(case.q.grad).all()
