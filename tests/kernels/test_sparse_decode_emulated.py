"""The CUDA sparse decode attention kernel, run on the CPU, against the PyTorch reference.

Machines without a GPU cannot launch the kernel, so this test builds kernels_cu/sparse_decode_attention.cu
with g++ and cuda_host_emulation.h (one OS thread per CUDA thread, real barriers for __syncthreads and the
warp shuffles) and drives it with the launcher's own plan, buffers and argument lists (`plan_launch`,
`prepare`, `launch_args`). What it cannot see: CuPy compilation, DLPack, streams and true GPU timing;
those are in test_sparse_decode_gpu.py.
"""
from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.kernels import cupy_module
from workbench.kernels.cupy_module import source_path
from workbench.kernels.sparse_decode_attention import (
    KERNEL_DTYPES,
    THREADS,
    _launch,
    launch_args,
    merge_name,
    name_expressions,
    partial_name,
    plan_launch,
    prepare,
    sparse_decode_attention_reference,
    validate,
)

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is needed to emulate the CUDA kernel on the CPU")

HERE = Path(__file__).resolve().parent
DTYPES = list(KERNEL_DTYPES)
# (head_dim, heads_per_block) instances built: enough for every case below.
INSTANCES = [(64, 1), (64, 2), (64, 4), (64, 8), (128, 2), (256, 1)]
PARTIAL_PARAMS = ("const void* q, const void* k, const void* v, const void* idx, const void* lengths, int use_lengths, "
                  "long long k_sb, long long k_sh, long long k_ss, long long v_sb, long long v_sh, long long v_ss, "
                  "int H, int H_kv, int K, int group, int group_blocks, int chunk, float qk_scale, "
                  "void* po, void* pm, void* pl, void* out, unsigned gx, unsigned gy, unsigned gz")
PARTIAL_CALL = ("(const T*)q, (const T*)k, (const T*)v, (const long long*)idx, (const int*)lengths, use_lengths, "
                "k_sb, k_sh, k_ss, v_sb, v_sh, v_ss, H, H_kv, K, group, group_blocks, chunk, qk_scale, "
                "(float*)po, (float*)pm, (float*)pl, (T*)out")


def _symbol(dtype: torch.dtype, head_dim: int | None = None, heads_per_block: int | None = None) -> str:
    name = str(dtype).removeprefix("torch.")
    return f"partial_{name}_{head_dim}_{heads_per_block}" if head_dim else f"merge_{name}"


def _driver_source() -> str:
    lines = ['#include "cuda_host_emulation.h"', f'#include "{source_path("sparse_decode_attention")}"']
    for dtype, ctype in KERNEL_DTYPES.items():
        for head_dim, heads_per_block in INSTANCES:
            lines.append(
                f'extern "C" void {_symbol(dtype, head_dim, heads_per_block)}({PARTIAL_PARAMS}) {{\n'
                f"    using T = {ctype};\n"
                f"    wb_launch(dim3{{gx, gy, gz}}, dim3{{128, 1, 1}}, [&] {{ "
                f"{partial_name(dtype, head_dim, heads_per_block)}({PARTIAL_CALL}); }});\n}}")
        lines.append(
            f'extern "C" void {_symbol(dtype)}(const void* po, const void* pm, const void* pl, void* out, '
            f"int H, int D, int num_splits, unsigned gx, unsigned gy, unsigned gz) {{\n"
            f"    using T = {ctype};\n"
            f"    wb_launch(dim3{{gx, gy, gz}}, dim3{{128, 1, 1}}, [&] {{ {merge_name(dtype)}("
            f"(const float*)po, (const float*)pm, (const float*)pl, (T*)out, H, D, num_splits); }});\n}}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cuda_emulation")
    driver = folder / "driver.cpp"
    driver.write_text(_driver_source())
    library = folder / "libsparse_decode.so"
    cmd = ["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", f"-I{HERE}", str(driver), "-o", str(library)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr[-5000:]}"
    return ctypes.CDLL(str(library))


def _c(arg):
    if isinstance(arg, torch.Tensor):
        return ctypes.c_void_p(arg.data_ptr())
    return {np.int32: ctypes.c_int, np.int64: ctypes.c_longlong, np.float32: ctypes.c_float}[type(arg)](arg)


def emulate(lib, q, k, v, indices, lengths=None, scale=None, num_splits=None, num_sms=132):
    """What `_launch` does, with the kernel run by the emulator instead of CuPy."""
    validate(q, k, v, indices, lengths, scale)
    plan = plan_launch(q.shape[0], q.shape[1], k.shape[1], indices.shape[2], num_sms, num_splits)
    q, k, v, indices, lengths, out, parts = prepare(q, k, v, indices, lengths, plan)
    partial_args, merge_args = launch_args(plan, q, k, v, indices, lengths, scale, out, parts)
    getattr(lib, _symbol(q.dtype, q.shape[2], plan.heads_per_block))(
        *map(_c, partial_args), *(ctypes.c_uint(n) for n in plan.grid))
    if merge_args is not None:
        getattr(lib, _symbol(q.dtype))(*map(_c, merge_args), *(ctypes.c_uint(n) for n in plan.merge_grid))
    return out, plan


def _check(out, case, dtype):
    expected = sparse_decode_attention_reference(*case.args())
    assert out.dtype == dtype
    if dtype == torch.float32:
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    else:  # one rounding of an fp32 result apart (the kernel and the reference accumulate in fp32)
        torch.testing.assert_close(out.float(), expected.float(), rtol=1e-2, atol=1e-3)


CASES = {
    # name: (case options, num_splits)
    "gqa3-k27-one-split": (dict(batch=2, heads=6, kv_heads=2, seq=40, list_len=27), None),
    "gqa3-k61-ragged-3-splits": (dict(batch=2, heads=6, kv_heads=2, seq=80, list_len=61, ragged=True), 3),
    "gqa9-two-head-blocks": (dict(batch=1, heads=9, kv_heads=1, seq=70, list_len=61), 4),
    "mha-gqa1": (dict(batch=1, heads=3, kv_heads=3, seq=30, list_len=27), 2),
    "gqa2-k333-auto-split": (dict(batch=1, heads=4, kv_heads=2, seq=400, list_len=333), None),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_emulated_kernel_matches_the_reference(emulator, case_factory, name, dtype):
    options, num_splits = CASES[name]
    case = case_factory(dtype=dtype, seed=len(name), **options)
    out, plan = emulate(emulator, *case.args(), num_splits=num_splits)
    if num_splits is not None:
        assert plan.num_splits == num_splits
    _check(out, case, dtype)


def test_split_plan_of_the_long_case_really_splits():
    plan = plan_launch(1, 4, 2, 333)
    assert plan.num_splits > 1 and plan.merge_grid is not None


@pytest.mark.parametrize("head_dim,heads,kv_heads", [(128, 4, 2), (256, 2, 2)])
def test_emulated_kernel_other_head_dims(emulator, case_factory, head_dim, heads, kv_heads):
    case = case_factory(batch=1, heads=heads, kv_heads=kv_heads, seq=50, head_dim=head_dim, list_len=27,
                        ragged=True)
    out, _ = emulate(emulator, *case.args(), num_splits=2)
    _check(out, case, torch.float32)


def test_emulated_kernel_strided_cache_int32_indices_and_scale(emulator, case_factory):
    case = case_factory(batch=2, heads=4, kv_heads=2, seq=40, list_len=27, seed=9)
    big_k, big_v = torch.randn(2, 2, 64, 64), torch.randn(2, 2, 64, 64)
    big_k[:, :, :40], big_v[:, :, :40] = case.k, case.v
    case.k, case.v = big_k[:, :, :40], big_v[:, :, :40]  # strided views of a larger cache
    assert not case.k.is_contiguous()
    out, _ = emulate(emulator, case.q, case.k, case.v, case.indices.int(), None, 0.2, num_splits=2)
    expected = sparse_decode_attention_reference(case.q, case.k, case.v, case.indices, None, 0.2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_emulated_kernel_large_scores_do_not_overflow(emulator, case_factory):
    case = case_factory(batch=1, heads=2, kv_heads=1, seq=90, list_len=61, seed=4)
    case.q *= 40.0  # scores in the hundreds: exp would overflow without the running-max rescaling
    out, _ = emulate(emulator, *case.args(), num_splits=5)
    assert torch.isfinite(out).all()
    _check(out, case, torch.float32)


@pytest.mark.parametrize("num_splits", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_emulated_output_rounds_to_nearest_even(emulator, case_factory, dtype, num_splits):
    # q = 0 gives equal weights, so each output is the exact fp32 mean of two stored values: often a tie
    # half-way between two fp16/bf16 numbers, which must round to even as torch does.
    case = case_factory(batch=1, heads=2, kv_heads=2, seq=300, list_len=2, dtype=dtype, seed=1)
    case.q.zero_()
    out, _ = emulate(emulator, *case.args(), num_splits=num_splits)
    rows = torch.stack([case.v[0, g, case.indices[0, g]].float().mean(0) for g in range(2)])[None]
    assert torch.equal(out, rows.to(dtype))
    assert torch.equal(sparse_decode_attention_reference(*case.args()), rows.to(dtype))


def test_the_cupy_launcher_glue_drives_the_emulated_kernels(emulator, case_factory, monkeypatch):
    """`_launch` itself, with CuPy's pieces replaced: compiled kernels -> emulated ones, DLPack -> identity."""
    symbols = {partial_name(dt, d, g): _symbol(dt, d, g) for dt in DTYPES for d, g in INSTANCES}
    symbols.update({merge_name(dt): _symbol(dt) for dt in DTYPES})
    launched = []

    def get_kernel(op, dtype, names, name, device):
        assert op == "sparse_decode_attention" and name in names and names == name_expressions(dtype)

        def kernel(grid, block, args):
            assert block == (THREADS, 1, 1)
            launched.append(name)
            getattr(emulator, symbols[name])(*map(_c, args), *(ctypes.c_uint(n) for n in grid))
        return kernel

    class Properties:
        multi_processor_count = 132

    monkeypatch.setattr(cupy_module, "get_kernel", get_kernel)
    monkeypatch.setattr(cupy_module, "to_cupy", lambda t: t)
    monkeypatch.setattr(cupy_module, "torch_stream", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Properties())
    for dtype in DTYPES:
        case = case_factory(batch=1, heads=4, kv_heads=2, seq=400, list_len=333, ragged=True, dtype=dtype)
        launched.clear()
        _check(_launch(*case.args()), case, dtype)
        assert launched == [partial_name(dtype, 64, 2), merge_name(dtype)]
        launched.clear()
        _check(_launch(*case.args(), num_splits=1), case, dtype)
        assert launched == [partial_name(dtype, 64, 2)]
