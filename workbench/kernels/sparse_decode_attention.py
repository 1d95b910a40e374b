"""Gathered (sparse) decode attention: one query per head attends to a chosen list of cached positions.

For query head h of batch row b, with KV head g = h // (H / H_kv) (grouped-query attention, GQA) and the
list n_0, n_1, ... = indices[b, g, :lengths[b, g]]:

    out[b, h] = softmax_i(scale * q[b, h] . k[b, g, n_i]) @ v[b, g, n_i],    scale = 1/sqrt(D) by default.

An empty list (length 0) gives a zero output. Duplicated positions count as often as they appear. The
PyTorch reference below (gather, then softmax in fp32) defines the result; the CUDA kernel in
kernels_cu/sparse_decode_attention.cu splits each list across thread blocks and merges the partial results
with log-sum-exp rescaling (the split-K scheme of flash-decoding: Dao et al., "Flash-Decoding for
long-context inference", 2023; the online softmax of Milakov & Gimelshein, arXiv:1805.02867).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from workbench.kernels import cupy_module
from workbench.kernels.dispatch import (
    BackendUnavailableError,
    KernelOp,
    dispatch,
    register,
)

OP = "sparse_decode_attention"
KERNEL_DTYPES = {torch.float32: "float", torch.float16: "wb_half", torch.bfloat16: "wb_bf16"}
HEAD_DIMS = (64, 128, 256)
HEADS_PER_BLOCK = (1, 2, 4, 8)  # query heads of one GQA group that one thread block serves
THREADS = 128  # WB_THREADS in the .cu file
MIN_KEYS_PER_SPLIT = 64
BLOCKS_PER_SM = 4  # aim for this many blocks per multiprocessor when choosing the number of splits
MAX_GRID_YZ = 65535
LOG2E = 1.4426950408889634


def partial_name(dtype: torch.dtype, head_dim: int, heads_per_block: int) -> str:
    return f"sparse_decode_partial<{KERNEL_DTYPES[dtype]}, {head_dim}, {heads_per_block}>"


def merge_name(dtype: torch.dtype) -> str:
    return f"sparse_decode_merge<{KERNEL_DTYPES[dtype]}>"


def name_expressions(dtype: torch.dtype) -> list[str]:
    """Every kernel instantiation compiled into the module for `dtype`."""
    names = [partial_name(dtype, d, g) for d in HEAD_DIMS for g in HEADS_PER_BLOCK]
    return names + [merge_name(dtype)]


def _default_scale(scale: float | None, head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)


def validate(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor,
             lengths: torch.Tensor | None = None, scale: float | None = None, check_indices: bool = True) -> None:
    """Raise ValueError, naming the argument and what is allowed, unless the arguments are well formed."""
    for name, t in (("q", q), ("k", k), ("v", v), ("indices", indices)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if q.ndim != 3:
        raise ValueError(f"q must be [B, H, D] (one decode query per head), got shape {tuple(q.shape)}")
    if k.ndim != 4:
        raise ValueError(f"k must be [B, H_kv, S, D], got shape {tuple(k.shape)}")
    if v.shape != k.shape:
        raise ValueError(f"v must have the shape of k {tuple(k.shape)}, got {tuple(v.shape)}")
    if not q.dtype.is_floating_point or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v must share one floating dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    (batch, heads, head_dim), (_, kv_heads, seq, _) = q.shape, k.shape
    if k.shape[0] != batch or k.shape[3] != head_dim:
        raise ValueError(f"k must be [B={batch}, H_kv, S, D={head_dim}] to match q, got {tuple(k.shape)}")
    if min(batch, heads, head_dim, kv_heads, seq) < 1:
        raise ValueError(f"empty input: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if heads % kv_heads != 0:
        raise ValueError(f"query heads H={heads} must be a multiple of KV heads H_kv={kv_heads} (GQA groups)")
    if indices.ndim != 3 or tuple(indices.shape[:2]) != (batch, kv_heads) or indices.shape[2] < 1:
        raise ValueError(f"indices must be [B={batch}, H_kv={kv_heads}, K] with K >= 1, got {tuple(indices.shape)}")
    if indices.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"indices must be int32 or int64, got {indices.dtype}")
    list_len = indices.shape[2]
    tensors = [("k", k), ("v", v), ("indices", indices)]
    if lengths is not None:
        if not isinstance(lengths, torch.Tensor) or tuple(lengths.shape) != (batch, kv_heads):
            raise ValueError(f"lengths must be a [B={batch}, H_kv={kv_heads}] tensor or None, got "
                             f"{tuple(lengths.shape) if isinstance(lengths, torch.Tensor) else type(lengths).__name__}")
        if lengths.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"lengths must be int32 or int64, got {lengths.dtype}")
        tensors.append(("lengths", lengths))
    for name, t in tensors:
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}; all tensors must share one device")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)
                              or not math.isfinite(scale) or scale <= 0):
        raise ValueError(f"scale must be a finite positive number or None (1/sqrt(D)), got {scale!r}")
    if lengths is not None:
        low, high = int(lengths.min()), int(lengths.max())
        if low < 0 or high > list_len:
            raise ValueError(f"lengths must lie in [0, K={list_len}], got values from {low} to {high}")
    if check_indices:
        used = _valid_mask(indices, lengths)
        bad = used & ((indices < 0) | (indices >= seq))
        if bool(bad.any()):
            b, g, i = (int(x) for x in bad.nonzero()[0])
            raise ValueError(f"indices must lie in [0, S={seq}) (S = cached positions), got "
                             f"indices[{b}, {g}, {i}] = {int(indices[b, g, i])}")


def _valid_mask(indices: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """[B, H_kv, K] bool: which list entries are used (the first lengths[b, g] of each list)."""
    if lengths is None:
        return torch.ones(indices.shape, dtype=torch.bool, device=indices.device)
    positions = torch.arange(indices.shape[2], device=indices.device)
    return positions < lengths[..., None]


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor,
               lengths: torch.Tensor | None = None, scale: float | None = None, check_indices: bool = True
               ) -> torch.Tensor:
    batch, heads, head_dim = q.shape
    kv_heads, list_len = k.shape[1], indices.shape[2]
    compute = torch.promote_types(q.dtype, torch.float32)
    valid = _valid_mask(indices, lengths)
    rows = torch.where(valid, indices.long(), 0)[..., None].expand(batch, kv_heads, list_len, head_dim)
    keys, values = k.gather(2, rows).to(compute), v.gather(2, rows).to(compute)
    queries = q.to(compute).reshape(batch, kv_heads, heads // kv_heads, head_dim)
    scores = torch.einsum("bngd,bnkd->bngk", queries, keys) * _default_scale(scale, head_dim)
    scores = scores.masked_fill(~valid[:, :, None, :], float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = torch.where(valid.any(-1)[:, :, None, None], weights, 0.0)  # empty list -> zero output
    out = torch.einsum("bngk,bnkd->bngd", weights, values)
    return out.reshape(batch, heads, head_dim).to(q.dtype)


def sparse_decode_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor,
                                      lengths: torch.Tensor | None = None, scale: float | None = None,
                                      check_indices: bool = True) -> torch.Tensor:
    """The PyTorch definition of `sparse_decode_attention` (any device, any floating dtype)."""
    validate(q, k, v, indices, lengths, scale, check_indices)
    return _reference(q, k, v, indices, lengths, scale)


@dataclass(frozen=True)
class LaunchPlan:
    """How the kernel covers a call: pass 1 on `grid` x `block`, then pass 2 on `merge_grid` if split."""

    heads_per_block: int
    group_blocks: int
    chunk: int
    num_splits: int
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    merge_grid: tuple[int, int, int] | None


def split_keys(keys: int, blocks: int, num_sms: int, num_splits: int | None, symbol: str) -> tuple[int, int]:
    """(keys per split, number of splits) for a split-K launch over `keys` keys with `blocks` blocks per split:
    by default enough splits for BLOCKS_PER_SM blocks per multiprocessor, at least MIN_KEYS_PER_SPLIT keys each,
    chunks in whole steps of 16 keys (4 warps x 4 keys); an explicit `num_splits` must lie in [1, keys]
    (`symbol` names the key count in the error)."""
    if num_splits is None:
        wanted = -(-BLOCKS_PER_SM * num_sms // blocks)
        num_splits = max(1, min(wanted, -(-keys // MIN_KEYS_PER_SPLIT)))
        chunk = -(-keys // num_splits)
        chunk = -(-chunk // 16) * 16
    else:
        if not 1 <= num_splits <= keys:
            raise ValueError(f"num_splits must lie in [1, {symbol}={keys}], got {num_splits}")
        chunk = -(-keys // num_splits)
    return chunk, -(-keys // chunk)


def plan_launch(batch: int, heads: int, kv_heads: int, list_len: int, num_sms: int = 132,
                num_splits: int | None = None) -> LaunchPlan:
    """Choose heads per block and the split of each index list (enough blocks to fill `num_sms`)."""
    group = heads // kv_heads
    heads_per_block = next(g for g in HEADS_PER_BLOCK if g >= min(group, HEADS_PER_BLOCK[-1]))
    group_blocks = -(-group // heads_per_block)
    blocks = batch * kv_heads * group_blocks
    chunk, num_splits = split_keys(list_len, blocks, num_sms, num_splits, "K")
    grid = (num_splits, kv_heads * group_blocks, batch)
    merge_grid = (heads, batch, 1) if num_splits > 1 else None
    return LaunchPlan(heads_per_block, group_blocks, chunk, num_splits, grid, (THREADS, 1, 1), merge_grid)


def kernel_support(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor,
                   lengths: torch.Tensor | None = None, scale: float | None = None, check_indices: bool = True
                   ) -> str | None:
    """None when the CUDA kernel covers this (valid) call, else what it lacks."""
    if q.dtype not in KERNEL_DTYPES:
        return f"dtype {q.dtype}; the kernel has {[str(d) for d in KERNEL_DTYPES]}"
    if q.shape[2] not in HEAD_DIMS:
        return f"head_dim {q.shape[2]}; the kernel has {list(HEAD_DIMS)}"
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return "inputs that require grad; the kernel has no backward"
    plan = plan_launch(q.shape[0], q.shape[1], k.shape[1], indices.shape[2])
    if max(plan.grid[1], plan.grid[2]) > MAX_GRID_YZ:
        return f"B={q.shape[0]} or H_kv x head blocks={plan.grid[1]} exceeds the grid limit {MAX_GRID_YZ}"
    return None


def launch_args(plan: LaunchPlan, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor,
                lengths: torch.Tensor | None, scale: float | None, out: torch.Tensor,
                parts: list[torch.Tensor]) -> tuple[tuple, tuple | None]:
    """The argument lists of pass 1 and pass 2 (None when not split), in kernel order: tensors and numpy
    scalars. Expects q, indices (int64), lengths (int32), out and parts contiguous, k/v last dim contiguous."""
    _, heads, head_dim = q.shape
    kv_heads, list_len = k.shape[1], indices.shape[2]
    i32, i64 = np.int32, np.int64
    slots = parts if parts else [out, out, out]  # not read when there is one split
    partial = (q, k, v, indices, lengths if lengths is not None else indices, i32(lengths is not None),
               *(i64(s) for s in k.stride()[:3]), *(i64(s) for s in v.stride()[:3]),
               i32(heads), i32(kv_heads), i32(list_len), i32(heads // kv_heads), i32(plan.group_blocks),
               i32(plan.chunk), np.float32(_default_scale(scale, head_dim) * LOG2E), *slots, out)
    merge = (*parts, out, i32(heads), i32(head_dim), i32(plan.num_splits)) if parts else None
    return partial, merge


def prepare(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor,
            lengths: torch.Tensor | None, plan: LaunchPlan) -> tuple:
    """Layouts the kernel reads, the output and the fp32 split buffers (empty list when not split)."""
    batch, heads, head_dim = q.shape
    q = q.contiguous()
    k = k if k.stride(-1) == 1 else k.contiguous()
    v = v if v.stride(-1) == 1 else v.contiguous()
    indices = indices.to(torch.int64).contiguous()
    lengths = lengths.to(torch.int32).contiguous() if lengths is not None else None
    out = torch.empty_like(q)
    parts = [torch.empty((batch, heads, plan.num_splits, *rest), dtype=torch.float32, device=q.device)
             for rest in ((head_dim,), (), ())] if plan.num_splits > 1 else []
    return q, k, v, indices, lengths, out, parts


def _launch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor,
            lengths: torch.Tensor | None = None, scale: float | None = None, check_indices: bool = True,
            num_splits: int | None = None) -> torch.Tensor:
    device = q.device
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    plan = plan_launch(q.shape[0], q.shape[1], k.shape[1], indices.shape[2], sms, num_splits)
    q, k, v, indices, lengths, out, parts = prepare(q, k, v, indices, lengths, plan)
    names = name_expressions(q.dtype)
    partial = cupy_module.get_kernel(OP, q.dtype, names, partial_name(q.dtype, q.shape[2], plan.heads_per_block),
                                     device)
    merge = cupy_module.get_kernel(OP, q.dtype, names, merge_name(q.dtype), device) if parts else None
    partial_args, merge_args = launch_args(plan, q, k, v, indices, lengths, scale, out, parts)
    convert = lambda a: cupy_module.to_cupy(a) if isinstance(a, torch.Tensor) else a
    with cupy_module.torch_stream(device):
        partial(plan.grid, plan.block, tuple(convert(a) for a in partial_args))
        if merge is not None:
            merge(plan.merge_grid, plan.block, tuple(convert(a) for a in merge_args))
    return out


def sparse_decode_attention_cupy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor,
                                 lengths: torch.Tensor | None = None, scale: float | None = None,
                                 check_indices: bool = True, num_splits: int | None = None) -> torch.Tensor:
    """The CUDA kernel alone, with an optional forced number of splits per list (tests, benchmarks)."""
    validate(q, k, v, indices, lengths, scale, check_indices)
    missing = cupy_module.cupy_unavailable_reason() or (None if q.is_cuda else "the tensors are on the CPU")
    if missing is not None:
        raise BackendUnavailableError(f"sparse_decode_attention_cupy cannot run: {missing}")
    lacking = kernel_support(q, k, v, indices, lengths, scale)
    if lacking is not None:
        raise ValueError(f"sparse_decode_attention_cupy does not cover this call: {lacking}")
    return _launch(q, k, v, indices, lengths, scale, num_splits=num_splits)


register(KernelOp(OP, reference=_reference, validate=validate, launcher=_launch, supports=kernel_support,
                  source=OP, instantiations=tuple(n for dtype in KERNEL_DTYPES for n in name_expressions(dtype))))


def sparse_decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, indices: torch.Tensor,
                            lengths: torch.Tensor | None = None, scale: float | None = None, *,
                            check_indices: bool = True, backend: str | None = None) -> torch.Tensor:
    """Decode attention of q [B, H, D] over k, v [B, H_kv, S, D] at indices [B, H_kv, K] -> [B, H, D].

    lengths [B, H_kv] (optional) keeps only the first lengths[b, g] entries of each list (ragged lists);
    scale defaults to 1/sqrt(D). check_indices=False skips the index range check (one device sync) for
    callers that guarantee it. backend: "auto" | "reference" | "cupy" (see workbench.kernels.dispatch).
    """
    return dispatch(OP, q, k, v, indices, lengths, scale, check_indices, backend=backend)
