"""The CUDA tree attention kernel, run on the CPU (g++ + cuda_host_emulation.h), against the PyTorch reference.

Driven with the launcher's own plan, buffers and argument lists (`plan_launch`, `prepare`, `launch_args`), over
odd sizes (S = 27, 61, 1110 keys), GQA, forced and automatic key splits, fp32/fp16/bf16. What it cannot see:
CuPy compilation, DLPack, streams and GPU timing (test_tree_attention_gpu.py).
"""
from __future__ import annotations

import contextlib
import shutil

import pytest
import torch
from kernel_emulation import build, c_arg, grid_args

from workbench.kernels import cupy_module
from workbench.kernels.cupy_module import source_path
from workbench.kernels.tree_attention import (
    KERNEL_DTYPES,
    THREADS,
    _launch,
    launch_args,
    merge_name,
    partial_name,
    plan_launch,
    prepare,
    tree_attention_reference,
    validate,
)
from workbench.speculative.tree import DraftTree

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is needed to emulate the CUDA kernel on the CPU")

DTYPES = list(KERNEL_DTYPES)
INSTANCES = [(64, 1), (64, 2), (64, 4), (64, 8), (128, 8), (256, 8)]  # (head_dim, rows per block) built
PARTIAL_PARAMS = ("const void* q, const void* k, const void* v, const void* mask, long long k_sb, long long k_sh, "
                  "long long k_ss, long long v_sb, long long v_sh, long long v_ss, int H, int H_kv, int N, int S, "
                  "int group, int row_blocks, int chunk, float qk_scale, void* po, void* pm, void* pl, void* out, "
                  "unsigned gx, unsigned gy, unsigned gz")
PARTIAL_CALL = ("(const T*)q, (const T*)k, (const T*)v, (const unsigned char*)mask, k_sb, k_sh, k_ss, v_sb, v_sh, "
                "v_ss, H, H_kv, N, S, group, row_blocks, chunk, qk_scale, (float*)po, (float*)pm, (float*)pl, (T*)out")


def _symbol(dtype: torch.dtype, head_dim: int | None = None, rows: int | None = None) -> str:
    name = str(dtype).removeprefix("torch.")
    return f"partial_{name}_{head_dim}_{rows}" if head_dim else f"merge_{name}"


def _driver_source() -> str:
    lines = ['#include "cuda_host_emulation.h"', f'#include "{source_path("tree_attention")}"']
    for dtype, ctype in KERNEL_DTYPES.items():
        for head_dim, rows in INSTANCES:
            lines.append(
                f'extern "C" void {_symbol(dtype, head_dim, rows)}({PARTIAL_PARAMS}) {{\n    using T = {ctype};\n'
                f"    wb_launch(dim3{{gx, gy, gz}}, dim3{{128, 1, 1}}, [&] {{ "
                f"{partial_name(dtype, head_dim, rows)}({PARTIAL_CALL}); }});\n}}")
        lines.append(
            f'extern "C" void {_symbol(dtype)}(const void* po, const void* pm, const void* pl, void* out, int rows, '
            f"int D, int num_splits, unsigned gx, unsigned gy, unsigned gz) {{\n    using T = {ctype};\n"
            f"    wb_launch(dim3{{gx, gy, gz}}, dim3{{128, 1, 1}}, [&] {{ {merge_name(dtype)}("
            f"(const float*)po, (const float*)pm, (const float*)pl, (T*)out, rows, D, num_splits); }});\n}}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    return build(tmp_path_factory.mktemp("tree_attention_emulation"), "tree_attention", _driver_source())


def random_tree(nodes: int, gen: torch.Generator) -> DraftTree:
    """A random DraftTree of `nodes` nodes (each parent -1 or an earlier node)."""
    parents = [int(torch.randint(-1, i, (), generator=gen)) if i else -1 for i in range(nodes)]
    return DraftTree(torch.randint(0, 100, (nodes,), generator=gen), parents)


def make_case(batch=1, heads=6, kv_heads=2, nodes=9, seq=27, head_dim=64, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, nodes, head_dim, generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, seq, head_dim, generator=gen).to(dtype)
    v = torch.randn(batch, kv_heads, seq, head_dim, generator=gen).to(dtype)
    return q, k, v, random_tree(nodes, gen).attention_mask()


def emulate(lib, q, k, v, tree_mask, scale=None, num_splits=None, num_sms=132):
    """What `_launch` does, with the kernel run by the emulator instead of CuPy."""
    validate(q, k, v, tree_mask, scale)
    plan = plan_launch(q.shape[0], q.shape[1], k.shape[1], q.shape[2], k.shape[2], num_sms, num_splits)
    q, k, v, mask, out, parts = prepare(q, k, v, tree_mask, plan)
    partial_args, merge_args = launch_args(plan, q, k, v, mask, scale, out, parts)
    getattr(lib, _symbol(q.dtype, q.shape[3], plan.rows_per_block))(*map(c_arg, partial_args), *grid_args(plan.grid))
    if merge_args is not None:
        getattr(lib, _symbol(q.dtype))(*map(c_arg, merge_args), *grid_args(plan.merge_grid))
    return out, plan


def _check(out, args, dtype, scale=None):
    expected = tree_attention_reference(*args, scale)
    assert out.dtype == dtype and out.shape == expected.shape
    if dtype == torch.float32:
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    else:  # one rounding of an fp32 result apart (the kernel and the reference accumulate in fp32)
        torch.testing.assert_close(out.float(), expected.float(), rtol=1e-2, atol=1e-3)


CASES = {
    # name: (case options, num_splits)
    "s27-gqa3-one-split": (dict(batch=2, heads=6, kv_heads=2, nodes=4, seq=27), None),
    "s61-gqa3-3-splits": (dict(batch=1, heads=6, kv_heads=2, nodes=5, seq=61), 3),
    "s61-mha-rows-of-2": (dict(batch=1, heads=2, kv_heads=2, nodes=1, seq=61), 2),
    "only-tree-no-prefix": (dict(batch=1, heads=3, kv_heads=1, nodes=7, seq=7), 2),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_emulated_kernel_matches_the_reference(emulator, name, dtype):
    options, num_splits = CASES[name]
    args = make_case(dtype=dtype, seed=len(name), **options)
    out, plan = emulate(emulator, *args, num_splits=num_splits)
    if num_splits is not None:
        assert plan.num_splits == num_splits
    _check(out, args, dtype)


def test_emulated_kernel_1110_keys_auto_split(emulator):
    args = make_case(batch=1, heads=1, kv_heads=1, nodes=3, seq=1110, seed=11)
    out, plan = emulate(emulator, *args)
    assert plan.num_splits > 1
    _check(out, args, torch.float32)


def test_the_long_case_really_splits_and_the_rows_are_grouped():
    plan = plan_launch(1, 2, 1, 5, 1110)
    assert plan.num_splits > 1 and plan.merge_grid == (10, 1, 1) and plan.rows_per_block == 8
    assert plan_launch(1, 2, 2, 1, 61).rows_per_block == 1


@pytest.mark.parametrize("head_dim", [128, 256])
def test_emulated_kernel_other_head_dims(emulator, head_dim):
    args = make_case(heads=4, kv_heads=2, nodes=3, seq=61, head_dim=head_dim, seed=head_dim)
    out, _ = emulate(emulator, *args, num_splits=2)
    _check(out, args, torch.float32)


def test_emulated_kernel_strided_cache_and_scale(emulator):
    q, k, v, mask = make_case(batch=2, heads=4, kv_heads=2, nodes=9, seq=40, seed=9)
    big_k, big_v = torch.randn(2, 2, 64, 64), torch.randn(2, 2, 64, 64)
    big_k[:, :, :40], big_v[:, :, :40] = k, v
    k, v = big_k[:, :, :40], big_v[:, :, :40]  # strided views of a larger cache
    assert not k.is_contiguous()
    out, _ = emulate(emulator, q, k, v, mask, 0.2, num_splits=2)
    _check(out, (q, k, v, mask), torch.float32, 0.2)


def test_a_split_holding_only_masked_keys_contributes_nothing(emulator):
    # A chain (each node sees all earlier nodes) after a 16-key prefix, split so that the last split holds
    # only tree keys: node 0 sees none of them, so its partial result there is empty (m = -inf) and must
    # get weight 0 in the merge; large scores check that no exponential overflows.
    q, k, v, _ = make_case(heads=1, kv_heads=1, nodes=24, seq=40, seed=4)
    mask = DraftTree.chain(list(range(24))).attention_mask()
    q *= 30.0
    out, plan = emulate(emulator, q, k, v, mask, num_splits=5)
    assert plan.chunk == 8 and torch.isfinite(out).all()
    _check(out, (q, k, v, mask), torch.float32)


def test_the_cupy_launcher_glue_drives_the_emulated_kernels(emulator, monkeypatch):
    """`_launch` itself, with CuPy's pieces replaced: compiled kernels -> emulated ones, DLPack -> identity."""
    launched = []

    def get_kernel(op, dtype, names, name, device):
        assert op == "tree_attention" and name in names
        symbol = {partial_name(dtype, d, r): _symbol(dtype, d, r) for d, r in INSTANCES} | {merge_name(dtype): _symbol(dtype)}

        def kernel(grid, block, args):
            assert block == (THREADS, 1, 1)
            launched.append(name)
            getattr(emulator, symbol[name])(*map(c_arg, args), *grid_args(grid))
        return kernel

    class Properties:
        multi_processor_count = 132

    monkeypatch.setattr(cupy_module, "get_kernel", get_kernel)
    monkeypatch.setattr(cupy_module, "to_cupy", lambda t: t)
    monkeypatch.setattr(cupy_module, "torch_stream", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Properties())
    for dtype in DTYPES:
        args = make_case(heads=2, kv_heads=1, nodes=3, seq=70, dtype=dtype, seed=3)
        launched.clear()
        _check(_launch(*args), args, dtype)
        assert launched == [partial_name(dtype, 64, 8), merge_name(dtype)]  # 6 rows -> blocks of 8
        launched.clear()
        _check(_launch(*args, num_splits=1), args, dtype)
        assert launched == [partial_name(dtype, 64, 8)]
