"""Per-head top-k selection: the k highest-scoring cache positions of each (batch, KV head), sorted ascending.

    topk_select(scores [B, H_kv, S], k) -> LongTensor [B, H_kv, max(k)]

k is one int or one int per KV head (a selector's `k_per_head`), each in [0, S]; a row with fewer than
max(k) positions ends in PAD (-1). Ranking: higher score first (scores compared as fp32 values; +0 == -0);
equal scores go to the lower position (ties="lower", the rule of `workbench.sparse.ranking.top_k_lex` with a
single key) or to the higher, more recent position (ties="higher", Quest's rule). The tie rule makes the
chosen set unique, so the kernel and the reference agree exactly, not just up to ties. NaN scores have no
rank: they are refused (ValueError) unless check_values=False, in which case the result is unspecified.

The PyTorch reference (stable sorts) defines the result; kernels_cu/topk_select.cu finds the k-th largest
value by radix select and writes the selected positions in order by a block-wide ordered compaction
(radix select as in Alabi et al., "Fast k-selection algorithms for graphics processing units", 2012).
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch

from workbench.kernels import cupy_module
from workbench.kernels.dispatch import (
    BackendUnavailableError,
    KernelOp,
    dispatch,
    register,
)

OP = "topk_select"
PAD = -1
TIES = ("lower", "higher")
KERNEL_DTYPES = {torch.float32: "float", torch.float16: "wb_half", torch.bfloat16: "wb_bf16"}
THREADS = 256  # WB_TOPK_THREADS in the .cu file
MAX_GRID_X = 2**31 - 1
MAX_ROW = 2**31 - 1 - THREADS  # per-thread segment bounds stay in int range


def kernel_name(dtype: torch.dtype) -> str:
    return f"topk_select_rows<{KERNEL_DTYPES[dtype]}>"


def name_expressions(dtype: torch.dtype) -> list[str]:
    """Every kernel instantiation compiled into the module for `dtype`."""
    return [kernel_name(dtype)]


def ks_list(k: int | Sequence[int], kv_heads: int) -> list[int]:
    """k as one int per KV head."""
    return [int(k)] * kv_heads if isinstance(k, numbers.Integral) else [int(x) for x in k]


def validate(scores: torch.Tensor, k: int | Sequence[int], ties: str = "lower", check_values: bool = True) -> None:
    """Raise ValueError, naming the argument and what is allowed, unless the arguments are well formed."""
    if not isinstance(scores, torch.Tensor):
        raise ValueError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.ndim != 3 or min(scores.shape) < 1:
        raise ValueError(f"scores must be a non-empty [B, H_kv, S] tensor, got shape {tuple(scores.shape)}")
    if not scores.dtype.is_floating_point:
        raise ValueError(f"scores must have a floating dtype, got {scores.dtype}")
    kv_heads, seq = scores.shape[1], scores.shape[2]
    if isinstance(k, bool) or not (isinstance(k, numbers.Integral) or (
            isinstance(k, Sequence) and all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in k))):
        raise ValueError(f"k must be an int or a sequence of H_kv={kv_heads} ints, got {k!r}")
    ks = ks_list(k, kv_heads)
    if len(ks) != kv_heads:
        raise ValueError(f"k must give one count per KV head (H_kv={kv_heads}), got {len(ks)}")
    if any(not 0 <= x <= seq for x in ks):
        raise ValueError(f"k must lie in [0, S={seq}] for every KV head, got {ks}")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {list(TIES)}, got {ties!r}")
    if check_values and bool(torch.isnan(scores).any()):
        raise ValueError("scores must not contain NaN (NaN has no rank); pass check_values=False to skip the check")


def _reference(scores: torch.Tensor, k: int | Sequence[int], ties: str = "lower", check_values: bool = True
               ) -> torch.Tensor:
    _, kv_heads, seq = scores.shape
    ks = ks_list(k, kv_heads)
    k_max = max(ks)
    values = scores.float()
    if ties == "higher":  # reversed rows: a stable sort then prefers the original higher position
        values = values.flip(-1)
    order = torch.sort(values, dim=-1, descending=True, stable=True).indices[..., :k_max]
    if ties == "higher":
        order = seq - 1 - order
    keep = torch.arange(k_max, device=scores.device) < torch.tensor(ks, device=scores.device)[:, None]
    order = torch.where(keep, order, seq).sort(dim=-1).values  # seq sorts after every position, then -> PAD
    return torch.where(order == seq, PAD, order)


def topk_select_reference(scores: torch.Tensor, k: int | Sequence[int], ties: str = "lower",
                          check_values: bool = True) -> torch.Tensor:
    """The PyTorch definition of `topk_select` (any device, any floating dtype)."""
    validate(scores, k, ties, check_values)
    return _reference(scores, k, ties)


def kernel_support(scores: torch.Tensor, k: int | Sequence[int], ties: str = "lower", check_values: bool = True
                   ) -> str | None:
    """None when the CUDA kernel covers this (valid) call, else what it lacks."""
    if scores.dtype not in KERNEL_DTYPES:
        return f"dtype {scores.dtype}; the kernel has {[str(d) for d in KERNEL_DTYPES]}"
    if scores.shape[2] > MAX_ROW:
        return f"rows of S={scores.shape[2]} scores; the kernel has S <= {MAX_ROW}"
    if scores.shape[0] * scores.shape[1] > MAX_GRID_X:
        return f"B x H_kv = {scores.shape[0] * scores.shape[1]} rows exceeds the grid limit {MAX_GRID_X}"
    return None


def prepare(scores: torch.Tensor, k: int | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The contiguous scores, the per-KV-head counts (int32) and the output buffer the kernel writes."""
    ks = torch.tensor(ks_list(k, scores.shape[1]), dtype=torch.int32, device=scores.device)
    out = torch.empty((*scores.shape[:2], int(ks.max())), dtype=torch.int64, device=scores.device)
    return scores.contiguous(), ks, out


def launch_args(scores: torch.Tensor, ks: torch.Tensor, out: torch.Tensor, ties: str
                ) -> tuple[tuple[int, int, int], tuple]:
    """(grid, arguments in kernel order) for prepared tensors."""
    i32 = np.int32
    grid = (scores.shape[0] * scores.shape[1], 1, 1)
    return grid, (scores, i32(scores.shape[2]), ks, i32(scores.shape[1]), i32(out.shape[2]),
                  i32(ties == "higher"), out)


def _launch(scores: torch.Tensor, k: int | Sequence[int], ties: str = "lower", check_values: bool = True
            ) -> torch.Tensor:
    scores, ks, out = prepare(scores, k)
    if out.shape[2] == 0:
        return out
    kernel = cupy_module.get_kernel(OP, scores.dtype, name_expressions(scores.dtype), kernel_name(scores.dtype),
                                    scores.device)
    grid, args = launch_args(scores, ks, out, ties)
    convert = lambda a: cupy_module.to_cupy(a) if isinstance(a, torch.Tensor) else a
    with cupy_module.torch_stream(scores.device):
        kernel(grid, (THREADS, 1, 1), tuple(convert(a) for a in args))
    return out


def topk_select_cupy(scores: torch.Tensor, k: int | Sequence[int], ties: str = "lower",
                     check_values: bool = True) -> torch.Tensor:
    """The CUDA kernel alone (tests, benchmarks)."""
    validate(scores, k, ties, check_values)
    missing = cupy_module.cupy_unavailable_reason() or (None if scores.is_cuda else "the tensors are on the CPU")
    if missing is not None:
        raise BackendUnavailableError(f"topk_select_cupy cannot run: {missing}")
    lacking = kernel_support(scores, k, ties)
    if lacking is not None:
        raise ValueError(f"topk_select_cupy does not cover this call: {lacking}")
    return _launch(scores, k, ties)


register(KernelOp(OP, reference=_reference, validate=validate, launcher=_launch, supports=kernel_support,
                  source=OP, instantiations=tuple(kernel_name(dtype) for dtype in KERNEL_DTYPES)))


def topk_select(scores: torch.Tensor, k: int | Sequence[int], ties: str = "lower", *, check_values: bool = True,
                backend: str | None = None) -> torch.Tensor:
    """Sorted positions [B, H_kv, max(k)] of the k highest scores of each row of scores [B, H_kv, S].

    k: one int, or one per KV head (rows with fewer end in PAD = -1). ties: "lower" | "higher" position wins
    among equal scores. check_values=False skips the NaN check (one device sync). backend: "auto" |
    "reference" | "cupy" (see workbench.kernels.dispatch).
    """
    return dispatch(OP, scores, k, ties, check_values, backend=backend)
