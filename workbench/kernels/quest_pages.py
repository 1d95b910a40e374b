"""Quest page metadata and page scores: per-page channel-wise key min/max, and the upper bound of q.k per page.

Paper: "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference" (Tang et al., 2024).

    kmin, kmax = quest_page_bounds(keys [B, H_kv, S, D], page_size)   # [B, H_kv, P, D] each, P = ceil(S / page_size)
    score = quest_page_scores(query [B, H, D], kmin, kmax)            # [B, H_kv, P] fp32

Page p holds positions [p * page_size, (p + 1) * page_size) ∩ [0, S): the last page may be partial and has
bounds over its valid keys. The bounds keep the keys' dtype (min and max are stored values, so exact). The
score of page p for KV head g is max over the query heads h of g's group (GQA, h // (H / H_kv) = g) of
sum_d max(q_hd * kmin_d, q_hd * kmax_d), an upper bound of q_h . k for every key of the page, unscaled: exactly
what `workbench.sparse.policies.quest` ranks pages by. Products and sums are fp32. The PyTorch references
below define the results (the Quest policy's own formulas); kernels_cu/quest_pages.cu computes the same.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from workbench.kernels import cupy_module
from workbench.kernels.dispatch import (
    BackendUnavailableError,
    KernelOp,
    dispatch,
    register,
)

SOURCE = "quest_pages"
BOUNDS_OP = "quest_page_bounds"
SCORES_OP = "quest_page_scores"
KERNEL_DTYPES = {torch.float32: "float", torch.float16: "wb_half", torch.bfloat16: "wb_bf16"}
THREADS = 128  # WB_THREADS in the .cu file
SCORE_PAGES_PER_BLOCK = 16  # 4 warps x 4 pages
MAX_GRID_YZ = 65535
MAX_INT = 2**31 - 1


def bounds_name(dtype: torch.dtype) -> str:
    return f"quest_page_bounds<{KERNEL_DTYPES[dtype]}>"


def scores_name(dtype: torch.dtype) -> str:
    return f"quest_page_scores<{KERNEL_DTYPES[dtype]}>"


def name_expressions(dtype: torch.dtype) -> list[str]:
    """Every kernel instantiation compiled into the module for `dtype` (both ops share kernels_cu/quest_pages.cu)."""
    return [bounds_name(dtype), scores_name(dtype)]


def num_pages(context_len: int, page_size: int) -> int:
    return -(-context_len // page_size)


def bounds_pages_per_block(head_dim: int) -> int:
    """Pages per block of the bounds kernel: at least 4 (page, channel) pairs per thread."""
    return max(1, -(-4 * THREADS // head_dim))


# --- page bounds -------------------------------------------------------------------------------------------------

def validate_bounds(keys: torch.Tensor, page_size: int) -> None:
    """Raise ValueError, naming the argument and what is allowed, unless the arguments are well formed."""
    if not isinstance(keys, torch.Tensor):
        raise ValueError(f"keys must be a torch.Tensor, got {type(keys).__name__}")
    if keys.ndim != 4 or min(keys.shape) < 1:
        raise ValueError(f"keys must be a non-empty [B, H_kv, S, D] tensor, got shape {tuple(keys.shape)}")
    if not keys.dtype.is_floating_point:
        raise ValueError(f"keys must have a floating dtype, got {keys.dtype}")
    if isinstance(page_size, bool) or not isinstance(page_size, numbers.Integral) or page_size < 1:
        raise ValueError(f"page_size must be an int >= 1, got {page_size!r}")


def _bounds_reference(keys: torch.Tensor, page_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    b, h_kv, s, d = keys.shape
    pages = num_pages(s, page_size)
    pad = pages * page_size - s
    lo = torch.cat([keys, keys.new_full((b, h_kv, pad, d), float("inf"))], 2).reshape(b, h_kv, pages, page_size, d)
    hi = torch.cat([keys, keys.new_full((b, h_kv, pad, d), float("-inf"))], 2).reshape(b, h_kv, pages, page_size, d)
    return lo.amin(3), hi.amax(3)


def quest_page_bounds_reference(keys: torch.Tensor, page_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The PyTorch definition of `quest_page_bounds` (any device, any floating dtype)."""
    validate_bounds(keys, page_size)
    return _bounds_reference(keys, page_size)


def bounds_support(keys: torch.Tensor, page_size: int) -> str | None:
    """None when the CUDA kernel covers this (valid) call, else what it lacks."""
    if keys.dtype not in KERNEL_DTYPES:
        return f"dtype {keys.dtype}; the kernel has {[str(d) for d in KERNEL_DTYPES]}"
    if torch.is_grad_enabled() and keys.requires_grad:
        return "inputs that require grad; the kernel has no backward"
    b, h_kv, s, _ = keys.shape
    if max(b, h_kv) > MAX_GRID_YZ:
        return f"B={b} or H_kv={h_kv} exceeds the grid limit {MAX_GRID_YZ}"
    if s + page_size > MAX_INT:
        return f"S + page_size = {s + page_size} exceeds the kernel's int range"
    return None


def prepare_bounds(keys: torch.Tensor, page_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keys with a contiguous last dim, and the two output buffers."""
    keys = keys if keys.stride(-1) == 1 else keys.contiguous()
    b, h_kv, s, d = keys.shape
    shape = (b, h_kv, num_pages(s, page_size), d)
    return keys, torch.empty(shape, dtype=keys.dtype, device=keys.device), torch.empty(
        shape, dtype=keys.dtype, device=keys.device)


def bounds_launch_args(keys: torch.Tensor, page_size: int, kmin: torch.Tensor, kmax: torch.Tensor
                       ) -> tuple[tuple[int, int, int], tuple]:
    """(grid, arguments in kernel order) for prepared tensors."""
    b, h_kv, s, d = keys.shape
    per_block = bounds_pages_per_block(d)
    grid = (-(-kmin.shape[2] // per_block), h_kv, b)
    i32, i64 = np.int32, np.int64
    args = (keys, *(i64(x) for x in keys.stride()[:3]), i32(h_kv), i32(s), i32(d), i32(page_size), i32(per_block),
            kmin, kmax)
    return grid, args


def _convert(a):
    return cupy_module.to_cupy(a) if isinstance(a, torch.Tensor) else a


def _bounds_launch(keys: torch.Tensor, page_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    keys, kmin, kmax = prepare_bounds(keys, page_size)
    kernel = cupy_module.get_kernel(SOURCE, keys.dtype, name_expressions(keys.dtype), bounds_name(keys.dtype),
                                    keys.device)
    grid, args = bounds_launch_args(keys, page_size, kmin, kmax)
    with cupy_module.torch_stream(keys.device):
        kernel(grid, (THREADS, 1, 1), tuple(_convert(a) for a in args))
    return kmin, kmax


def quest_page_bounds_cupy(keys: torch.Tensor, page_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The CUDA kernel alone (tests, benchmarks)."""
    validate_bounds(keys, page_size)
    _require_cuda("quest_page_bounds_cupy", keys)
    lacking = bounds_support(keys, page_size)
    if lacking is not None:
        raise ValueError(f"quest_page_bounds_cupy does not cover this call: {lacking}")
    return _bounds_launch(keys, page_size)


# --- page scores -------------------------------------------------------------------------------------------------

def validate_scores(query: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor) -> None:
    """Raise ValueError, naming the argument and what is allowed, unless the arguments are well formed."""
    for name, t in (("query", query), ("kmin", kmin), ("kmax", kmax)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if query.ndim != 3 or min(query.shape) < 1:
        raise ValueError(f"query must be a non-empty [B, H, D] tensor (one decode query per head), "
                         f"got shape {tuple(query.shape)}")
    if kmin.ndim != 4 or min(kmin.shape) < 1:
        raise ValueError(f"kmin must be a non-empty [B, H_kv, P, D] tensor, got shape {tuple(kmin.shape)}")
    if kmax.shape != kmin.shape:
        raise ValueError(f"kmax must have the shape of kmin {tuple(kmin.shape)}, got {tuple(kmax.shape)}")
    if not query.dtype.is_floating_point or kmin.dtype != query.dtype or kmax.dtype != query.dtype:
        raise ValueError(f"query, kmin, kmax must share one floating dtype, got {query.dtype}, {kmin.dtype}, "
                         f"{kmax.dtype}")
    (b, h, d), (_, h_kv, _, _) = query.shape, kmin.shape
    if kmin.shape[0] != b or kmin.shape[3] != d:
        raise ValueError(f"kmin must be [B={b}, H_kv, P, D={d}] to match query, got {tuple(kmin.shape)}")
    if h % h_kv != 0:
        raise ValueError(f"query heads H={h} must be a multiple of KV heads H_kv={h_kv} (GQA groups)")
    for name, t in (("kmin", kmin), ("kmax", kmax)):
        if t.device != query.device:
            raise ValueError(f"{name} is on {t.device} but query is on {query.device}; all tensors must share one device")


def _scores_reference(query: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor) -> torch.Tensor:
    b, h, d = query.shape
    h_kv = kmin.shape[1]
    q = query.float().reshape(b, h_kv, h // h_kv, 1, d)
    bound = torch.maximum(q * kmax.float().unsqueeze(2), q * kmin.float().unsqueeze(2)).sum(-1)
    return bound.amax(2)


def quest_page_scores_reference(query: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor) -> torch.Tensor:
    """The PyTorch definition of `quest_page_scores` (any device, any floating dtype)."""
    validate_scores(query, kmin, kmax)
    return _scores_reference(query, kmin, kmax)


def scores_support(query: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor) -> str | None:
    """None when the CUDA kernel covers this (valid) call, else what it lacks."""
    if query.dtype not in KERNEL_DTYPES:
        return f"dtype {query.dtype}; the kernel has {[str(d) for d in KERNEL_DTYPES]}"
    if torch.is_grad_enabled() and any(t.requires_grad for t in (query, kmin, kmax)):
        return "inputs that require grad; the kernel has no backward"
    if max(kmin.shape[0], kmin.shape[1]) > MAX_GRID_YZ:
        return f"B={kmin.shape[0]} or H_kv={kmin.shape[1]} exceeds the grid limit {MAX_GRID_YZ}"
    if kmin.shape[2] + SCORE_PAGES_PER_BLOCK > MAX_INT:
        return f"P={kmin.shape[2]} pages exceeds the kernel's int range"
    return None


def prepare_scores(query: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor) -> tuple:
    """Contiguous inputs and the fp32 output buffer."""
    out = torch.empty(kmin.shape[:3], dtype=torch.float32, device=query.device)
    return query.contiguous(), kmin.contiguous(), kmax.contiguous(), out


def scores_launch_args(query: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor, out: torch.Tensor
                       ) -> tuple[tuple[int, int, int], tuple]:
    """(grid, arguments in kernel order) for prepared tensors."""
    b, h, d = query.shape
    h_kv, pages = kmin.shape[1], kmin.shape[2]
    grid = (-(-pages // SCORE_PAGES_PER_BLOCK), h_kv, b)
    i32 = np.int32
    return grid, (query, kmin, kmax, i32(h), i32(h_kv), i32(pages), i32(d), i32(SCORE_PAGES_PER_BLOCK), out)


def _scores_launch(query: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor) -> torch.Tensor:
    query, kmin, kmax, out = prepare_scores(query, kmin, kmax)
    kernel = cupy_module.get_kernel(SOURCE, query.dtype, name_expressions(query.dtype), scores_name(query.dtype),
                                    query.device)
    grid, args = scores_launch_args(query, kmin, kmax, out)
    with cupy_module.torch_stream(query.device):
        kernel(grid, (THREADS, 1, 1), tuple(_convert(a) for a in args))
    return out


def quest_page_scores_cupy(query: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor) -> torch.Tensor:
    """The CUDA kernel alone (tests, benchmarks)."""
    validate_scores(query, kmin, kmax)
    _require_cuda("quest_page_scores_cupy", query)
    lacking = scores_support(query, kmin, kmax)
    if lacking is not None:
        raise ValueError(f"quest_page_scores_cupy does not cover this call: {lacking}")
    return _scores_launch(query, kmin, kmax)


def _require_cuda(what: str, tensor: torch.Tensor) -> None:
    missing = cupy_module.cupy_unavailable_reason() or (None if tensor.is_cuda else "the tensors are on the CPU")
    if missing is not None:
        raise BackendUnavailableError(f"{what} cannot run: {missing}")


register(KernelOp(BOUNDS_OP, reference=_bounds_reference, validate=validate_bounds, launcher=_bounds_launch,
                  supports=bounds_support, source=SOURCE,
                  instantiations=tuple(bounds_name(dtype) for dtype in KERNEL_DTYPES)))
register(KernelOp(SCORES_OP, reference=_scores_reference, validate=validate_scores, launcher=_scores_launch,
                  supports=scores_support, source=SOURCE,
                  instantiations=tuple(scores_name(dtype) for dtype in KERNEL_DTYPES)))


def quest_page_bounds(keys: torch.Tensor, page_size: int, *, backend: str | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(kmin, kmax): channel-wise min and max of the keys [B, H_kv, S, D] of each page -> [B, H_kv, P, D] each.

    backend: "auto" | "reference" | "cupy" (see workbench.kernels.dispatch).
    """
    return dispatch(BOUNDS_OP, keys, page_size, backend=backend)


def quest_page_scores(query: torch.Tensor, kmin: torch.Tensor, kmax: torch.Tensor, *, backend: str | None = None
                      ) -> torch.Tensor:
    """Quest's upper bound of q.k per page, max over each KV head's query heads: [B, H_kv, P] fp32.

    query [B, H, D] (one decode query per head), kmin/kmax [B, H_kv, P, D] from `quest_page_bounds`.
    backend: "auto" | "reference" | "cupy" (see workbench.kernels.dispatch).
    """
    return dispatch(SCORES_OP, query, kmin, kmax, backend=backend)
