"""Tree attention for speculative verification: N draft-tree nodes attend to the cached prefix and their ancestors.

Keys k, v [B, H_kv, S, D] hold P = S - N cached prefix positions followed by the N tree nodes. For query head h
(KV head g = h // (H / H_kv), grouped-query attention) and node i:

    out[b, h, i] = softmax_s(scale * q[b, h, i] . k[b, g, s]) @ v[b, g, s]
                   over every prefix position s < P and the nodes s = P + j with tree_mask[i, j],

scale = 1/sqrt(D) by default. `tree_mask[i, j]` is True iff node j is an ancestor of node i or i itself (the mask
of `DraftTree.attention_mask`, tree attention as in SpecInfer, Miao et al. 2024, and Medusa, Cai et al. 2024); any
boolean mask with a True diagonal is accepted. The PyTorch reference (masked scaled-dot-product attention in
fp32) defines the result; the CUDA kernel in kernels_cu/tree_attention.cu splits the S keys across thread blocks
and merges the partial softmaxes with log-sum-exp rescaling (flash-decoding, Dao et al. 2023; online softmax,
Milakov & Gimelshein, arXiv:1805.02867), each block serving several (head, node) query rows of one KV head.
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
from workbench.kernels.sparse_decode_attention import split_keys

OP = "tree_attention"
KERNEL_DTYPES = {torch.float32: "float", torch.float16: "wb_half", torch.bfloat16: "wb_bf16"}
HEAD_DIMS = (64, 128, 256)
ROWS_PER_BLOCK = (1, 2, 4, 8)  # (head, node) query rows of one KV head that one thread block serves
THREADS = 128  # WB_THREADS in the .cu file
MAX_GRID_YZ = 65535
LOG2E = 1.4426950408889634


def partial_name(dtype: torch.dtype, head_dim: int, rows_per_block: int) -> str:
    return f"tree_attention_partial<{KERNEL_DTYPES[dtype]}, {head_dim}, {rows_per_block}>"


def merge_name(dtype: torch.dtype) -> str:
    return f"tree_attention_merge<{KERNEL_DTYPES[dtype]}>"


def name_expressions(dtype: torch.dtype) -> list[str]:
    """Every kernel instantiation compiled into the module for `dtype`."""
    return [partial_name(dtype, d, r) for d in HEAD_DIMS for r in ROWS_PER_BLOCK] + [merge_name(dtype)]


def _default_scale(scale: float | None, head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)


def validate(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tree_mask: torch.Tensor,
             scale: float | None = None) -> None:
    """Raise ValueError, naming the argument and what is allowed, unless the arguments are well formed."""
    for name, t in (("q", q), ("k", k), ("v", v), ("tree_mask", tree_mask)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if q.ndim != 4:
        raise ValueError(f"q must be [B, H, N, D] (one query per head and tree node), got shape {tuple(q.shape)}")
    if k.ndim != 4:
        raise ValueError(f"k must be [B, H_kv, S, D] (S = prefix + N tree nodes), got shape {tuple(k.shape)}")
    if v.shape != k.shape:
        raise ValueError(f"v must have the shape of k {tuple(k.shape)}, got {tuple(v.shape)}")
    if not q.dtype.is_floating_point or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v must share one floating dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    (batch, heads, nodes, head_dim), (_, kv_heads, seq, _) = q.shape, k.shape
    if k.shape[0] != batch or k.shape[3] != head_dim:
        raise ValueError(f"k must be [B={batch}, H_kv, S, D={head_dim}] to match q, got {tuple(k.shape)}")
    if min(batch, heads, nodes, head_dim, kv_heads) < 1:
        raise ValueError(f"empty input: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if heads % kv_heads != 0:
        raise ValueError(f"query heads H={heads} must be a multiple of KV heads H_kv={kv_heads} (GQA groups)")
    if seq < nodes:
        raise ValueError(f"k must hold the prefix and then the N={nodes} tree nodes (S >= N), got S={seq}")
    if tree_mask.dtype != torch.bool or tuple(tree_mask.shape) != (nodes, nodes):
        raise ValueError(f"tree_mask must be a bool tensor [N, N] = [{nodes}, {nodes}], got "
                         f"{tree_mask.dtype} {tuple(tree_mask.shape)}")
    for name, t in (("k", k), ("v", v), ("tree_mask", tree_mask)):
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}; all tensors must share one device")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)
                              or not math.isfinite(scale) or scale <= 0):
        raise ValueError(f"scale must be a finite positive number or None (1/sqrt(D)), got {scale!r}")
    if not bool(tree_mask.diagonal().all()):
        i = int((~tree_mask.diagonal()).nonzero()[0])
        raise ValueError(f"tree_mask[{i}, {i}] is False: every node must see itself (the diagonal must be True)")


def key_mask(tree_mask: torch.Tensor, seq: int) -> torch.Tensor:
    """[N, S] bool: which keys each node sees (every prefix position, then its row of the tree mask)."""
    nodes = tree_mask.shape[0]
    prefix = torch.ones(nodes, seq - nodes, dtype=torch.bool, device=tree_mask.device)
    return torch.cat([prefix, tree_mask], dim=1)


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tree_mask: torch.Tensor,
               scale: float | None = None) -> torch.Tensor:
    compute = torch.promote_types(q.dtype, torch.float32)
    groups = q.shape[1] // k.shape[1]
    keys = k.to(compute).repeat_interleave(groups, dim=1)
    values = v.to(compute).repeat_interleave(groups, dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(
        q.to(compute), keys, values, attn_mask=key_mask(tree_mask, k.shape[2]),
        scale=_default_scale(scale, q.shape[3]))
    return out.to(q.dtype)


def tree_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tree_mask: torch.Tensor,
                             scale: float | None = None) -> torch.Tensor:
    """The PyTorch definition of `tree_attention` (any device, any floating dtype)."""
    validate(q, k, v, tree_mask, scale)
    return _reference(q, k, v, tree_mask, scale)


@dataclass(frozen=True)
class LaunchPlan:
    """How the kernel covers a call: pass 1 on `grid` x `block`, then pass 2 on `merge_grid` if split."""

    rows_per_block: int
    row_blocks: int
    chunk: int
    num_splits: int
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    merge_grid: tuple[int, int, int] | None


def plan_launch(batch: int, heads: int, kv_heads: int, nodes: int, seq: int, num_sms: int = 132,
                num_splits: int | None = None) -> LaunchPlan:
    """Choose rows per block and the split of the S keys (enough blocks to fill `num_sms`)."""
    rows = heads // kv_heads * nodes
    rows_per_block = next(r for r in ROWS_PER_BLOCK if r >= min(rows, ROWS_PER_BLOCK[-1]))
    row_blocks = -(-rows // rows_per_block)
    blocks = batch * kv_heads * row_blocks
    chunk, num_splits = split_keys(seq, blocks, num_sms, num_splits, "S")
    grid = (num_splits, kv_heads * row_blocks, batch)
    merge_grid = (heads * nodes, batch, 1) if num_splits > 1 else None
    return LaunchPlan(rows_per_block, row_blocks, chunk, num_splits, grid, (THREADS, 1, 1), merge_grid)


def kernel_support(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tree_mask: torch.Tensor,
                   scale: float | None = None) -> str | None:
    """None when the CUDA kernel covers this (valid) call, else what it lacks."""
    if q.dtype not in KERNEL_DTYPES:
        return f"dtype {q.dtype}; the kernel has {[str(d) for d in KERNEL_DTYPES]}"
    if q.shape[3] not in HEAD_DIMS:
        return f"head_dim {q.shape[3]}; the kernel has {list(HEAD_DIMS)}"
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return "inputs that require grad; the kernel has no backward"
    plan = plan_launch(q.shape[0], q.shape[1], k.shape[1], q.shape[2], k.shape[2])
    if max(plan.grid[1], plan.grid[2]) > MAX_GRID_YZ:
        return f"B={q.shape[0]} or H_kv x row blocks={plan.grid[1]} exceeds the grid limit {MAX_GRID_YZ}"
    return None


def prepare(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tree_mask: torch.Tensor, plan: LaunchPlan) -> tuple:
    """Layouts the kernel reads (mask as contiguous uint8), the output and the fp32 split buffers."""
    batch, heads, nodes, head_dim = q.shape
    q = q.contiguous()
    k = k if k.stride(-1) == 1 else k.contiguous()
    v = v if v.stride(-1) == 1 else v.contiguous()
    mask = tree_mask.contiguous().view(torch.uint8)
    out = torch.empty_like(q)
    parts = [torch.empty((batch, heads, nodes, plan.num_splits, *rest), dtype=torch.float32, device=q.device)
             for rest in ((head_dim,), (), ())] if plan.num_splits > 1 else []
    return q, k, v, mask, out, parts


def launch_args(plan: LaunchPlan, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                scale: float | None, out: torch.Tensor, parts: list[torch.Tensor]) -> tuple[tuple, tuple | None]:
    """The argument lists of pass 1 and pass 2 (None when not split), in kernel order."""
    _, heads, nodes, head_dim = q.shape
    kv_heads, seq = k.shape[1], k.shape[2]
    i32, i64 = np.int32, np.int64
    slots = parts if parts else [out, out, out]  # not read when there is one split
    partial = (q, k, v, mask, *(i64(s) for s in k.stride()[:3]), *(i64(s) for s in v.stride()[:3]),
               i32(heads), i32(kv_heads), i32(nodes), i32(seq), i32(heads // kv_heads), i32(plan.row_blocks),
               i32(plan.chunk), np.float32(_default_scale(scale, head_dim) * LOG2E), *slots, out)
    merge = (*parts, out, i32(heads * nodes), i32(head_dim), i32(plan.num_splits)) if parts else None
    return partial, merge


def _launch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tree_mask: torch.Tensor,
            scale: float | None = None, num_splits: int | None = None) -> torch.Tensor:
    device = q.device
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    plan = plan_launch(q.shape[0], q.shape[1], k.shape[1], q.shape[2], k.shape[2], sms, num_splits)
    q, k, v, mask, out, parts = prepare(q, k, v, tree_mask, plan)
    names = name_expressions(q.dtype)
    partial = cupy_module.get_kernel(OP, q.dtype, names, partial_name(q.dtype, q.shape[3], plan.rows_per_block),
                                     device)
    merge = cupy_module.get_kernel(OP, q.dtype, names, merge_name(q.dtype), device) if parts else None
    partial_args, merge_args = launch_args(plan, q, k, v, mask, scale, out, parts)
    convert = lambda a: cupy_module.to_cupy(a) if isinstance(a, torch.Tensor) else a
    with cupy_module.torch_stream(device):
        partial(plan.grid, plan.block, tuple(convert(a) for a in partial_args))
        if merge is not None:
            merge(plan.merge_grid, plan.block, tuple(convert(a) for a in merge_args))
    return out


def tree_attention_cupy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tree_mask: torch.Tensor,
                        scale: float | None = None, num_splits: int | None = None) -> torch.Tensor:
    """The CUDA kernel alone, with an optional forced number of key splits (tests, benchmarks)."""
    validate(q, k, v, tree_mask, scale)
    missing = cupy_module.cupy_unavailable_reason() or (None if q.is_cuda else "the tensors are on the CPU")
    if missing is not None:
        raise BackendUnavailableError(f"tree_attention_cupy cannot run: {missing}")
    lacking = kernel_support(q, k, v, tree_mask, scale)
    if lacking is not None:
        raise ValueError(f"tree_attention_cupy does not cover this call: {lacking}")
    return _launch(q, k, v, tree_mask, scale, num_splits=num_splits)


register(KernelOp(OP, reference=_reference, validate=validate, launcher=_launch, supports=kernel_support,
                  source=OP, instantiations=tuple(n for dtype in KERNEL_DTYPES for n in name_expressions(dtype))))


def tree_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tree_mask: torch.Tensor,
                   scale: float | None = None, *, backend: str | None = None) -> torch.Tensor:
    """Tree attention of q [B, H, N, D] over k, v [B, H_kv, P + N, D] under tree_mask [N, N] -> [B, H, N, D].

    The first P keys (the cached prefix) are seen by every node; the last N are the tree nodes, node i seeing
    node j iff tree_mask[i, j]. scale defaults to 1/sqrt(D). backend: "auto" | "reference" | "cupy" (see
    workbench.kernels.dispatch).
    """
    return dispatch(OP, q, k, v, tree_mask, scale, backend=backend)
