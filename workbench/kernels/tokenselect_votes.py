"""TokenSelect soft votes: each query head's softmax over q.k, summed over the query heads of each KV head.

Paper: "TokenSelect: Efficient Long-Context Inference and Length Extrapolation for LLMs via Dynamic Token-Level
KV Cache Selection" (Wu et al., 2025).

    votes = tokenselect_votes(query [B, H, D], keys [B, H_kv, S, D], scale=None)     # [B, H_kv, S] fp32
    votes[b, g, s] = sum over query heads h of KV head g (h // (H / H_kv) = g) of softmax_s(scale * q_bh . k_bgs)

scale defaults to D ** -0.5. This is `TokenSelect.votes` with vote_over="group" (and the oracle's ranking
score): the reference below computes it with the same operations in the same order (fp32 einsum, softmax,
group sum), so a policy calling the dispatched op on the CPU gets bit-identical votes. The kernel in
kernels_cu/tokenselect_votes.cu writes the logits once to an fp32 workspace with a split online softmax and
normalises them in a second pass.
"""
from __future__ import annotations

import math
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

OP = "tokenselect_votes"
KERNEL_DTYPES = {torch.float32: "float", torch.float16: "wb_half", torch.bfloat16: "wb_bf16"}
HEAD_DIMS = (64, 128, 256)
THREADS = 128  # WB_THREADS in the .cu file
MAX_GROUP = 64  # WB_MAX_GROUP
MAX_QVALS = 4096  # WB_MAX_QVALS: group * D
MIN_KEYS_PER_SPLIT = 64
BLOCKS_PER_SM = 4
VOTE_CHUNK = 1024  # keys per block of pass 2
MAX_GRID_YZ = 65535
MAX_INT = 2**31 - 1
LOG2E = 1.4426950408889634


def logits_name(dtype: torch.dtype, head_dim: int) -> str:
    return f"tokenselect_logits<{KERNEL_DTYPES[dtype]}, {head_dim}>"


VOTE_NAME = "tokenselect_vote"


def name_expressions(dtype: torch.dtype) -> list[str]:
    """Every kernel compiled into the module for `dtype` (the vote pass is fp32 only, the same in every module)."""
    return [logits_name(dtype, d) for d in HEAD_DIMS] + [VOTE_NAME]


def default_scale(scale: float | None, head_dim: int) -> float:
    return head_dim ** -0.5 if scale is None else float(scale)


def validate(query: torch.Tensor, keys: torch.Tensor, scale: float | None = None) -> None:
    """Raise ValueError, naming the argument and what is allowed, unless the arguments are well formed."""
    for name, t in (("query", query), ("keys", keys)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if query.ndim != 3 or min(query.shape) < 1:
        raise ValueError(f"query must be a non-empty [B, H, D] tensor (one decode query per head), "
                         f"got shape {tuple(query.shape)}")
    if keys.ndim != 4 or min(keys.shape) < 1:
        raise ValueError(f"keys must be a non-empty [B, H_kv, S, D] tensor, got shape {tuple(keys.shape)}")
    if not query.dtype.is_floating_point or keys.dtype != query.dtype:
        raise ValueError(f"query and keys must share one floating dtype, got {query.dtype}, {keys.dtype}")
    (b, h, d), h_kv = query.shape, keys.shape[1]
    if keys.shape[0] != b or keys.shape[3] != d:
        raise ValueError(f"keys must be [B={b}, H_kv, S, D={d}] to match query, got {tuple(keys.shape)}")
    if h % h_kv != 0:
        raise ValueError(f"query heads H={h} must be a multiple of KV heads H_kv={h_kv} (GQA groups)")
    if keys.device != query.device:
        raise ValueError(f"keys is on {keys.device} but query is on {query.device}; both must share one device")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)
                              or not math.isfinite(scale) or scale <= 0):
        raise ValueError(f"scale must be a finite positive number or None (D ** -0.5), got {scale!r}")


def _reference(query: torch.Tensor, keys: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    b, h, d = query.shape
    h_kv = keys.shape[1]
    q = query.float().reshape(b, h_kv, h // h_kv, d)
    logits = torch.einsum("bgqd,bgsd->bgqs", q, keys.float()) * default_scale(scale, d)
    return logits.softmax(-1).sum(2)


def tokenselect_votes_reference(query: torch.Tensor, keys: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """The PyTorch definition of `tokenselect_votes` (any device, any floating dtype)."""
    validate(query, keys, scale)
    return _reference(query, keys, scale)


def plan_splits(batch: int, kv_heads: int, seq: int, num_sms: int = 132, num_splits: int | None = None
                ) -> tuple[int, int]:
    """(num_splits, chunk) of pass 1: enough blocks to fill `num_sms`, at least 64 keys per split."""
    if num_splits is None:
        wanted = -(-BLOCKS_PER_SM * num_sms // (batch * kv_heads))
        num_splits = max(1, min(wanted, -(-seq // MIN_KEYS_PER_SPLIT)))
    elif not 1 <= num_splits <= seq:
        raise ValueError(f"num_splits must lie in [1, S={seq}], got {num_splits}")
    chunk = -(-seq // num_splits)
    return -(-seq // chunk), chunk


def kernel_support(query: torch.Tensor, keys: torch.Tensor, scale: float | None = None) -> str | None:
    """None when the CUDA kernel covers this (valid) call, else what it lacks."""
    (b, h, d), (_, h_kv, s, _) = query.shape, keys.shape
    if query.dtype not in KERNEL_DTYPES:
        return f"dtype {query.dtype}; the kernel has {[str(x) for x in KERNEL_DTYPES]}"
    if d not in HEAD_DIMS:
        return f"head_dim {d}; the kernel has {list(HEAD_DIMS)}"
    group = h // h_kv
    if group > MAX_GROUP or group * d > MAX_QVALS:
        return f"{group} query heads per KV head at head_dim {d}; the kernel has group <= {MAX_GROUP} and " \
               f"group x head_dim <= {MAX_QVALS}"
    if torch.is_grad_enabled() and any(t.requires_grad for t in (query, keys)):
        return "inputs that require grad; the kernel has no backward"
    if max(b, h_kv) > MAX_GRID_YZ:
        return f"B={b} or H_kv={h_kv} exceeds the grid limit {MAX_GRID_YZ}"
    if s + VOTE_CHUNK > MAX_INT:
        return f"S={s} exceeds the kernel's int range"
    return None


def prepare(query: torch.Tensor, keys: torch.Tensor, num_splits: int) -> tuple:
    """Layouts the kernels read, the logits workspace, the split statistics and the output."""
    b, h, _ = query.shape
    h_kv, s = keys.shape[1], keys.shape[2]
    query = query.contiguous()
    keys = keys if keys.stride(-1) == 1 else keys.contiguous()
    f32 = {"dtype": torch.float32, "device": query.device}
    logits = torch.empty((b, h, s), **f32)
    part_m, part_l = torch.empty((b, h, num_splits), **f32), torch.empty((b, h, num_splits), **f32)
    return query, keys, logits, part_m, part_l, torch.empty((b, h_kv, s), **f32)


def launch_args(query: torch.Tensor, keys: torch.Tensor, scale: float | None, chunk: int, num_splits: int,
                logits: torch.Tensor, part_m: torch.Tensor, part_l: torch.Tensor, votes: torch.Tensor
                ) -> tuple[tuple[int, int, int], tuple, tuple[int, int, int], tuple]:
    """(grid, arguments) of pass 1 and of pass 2, in kernel order, for prepared tensors."""
    b, h, d = query.shape
    h_kv, s = keys.shape[1], keys.shape[2]
    i32, i64 = np.int32, np.int64
    grid1 = (num_splits, h_kv, b)
    args1 = (query, keys, *(i64(x) for x in keys.stride()[:3]), i32(h), i32(h_kv), i32(s), i32(chunk),
             np.float32(default_scale(scale, d) * LOG2E), logits, part_m, part_l)
    grid2 = (-(-s // VOTE_CHUNK), h_kv, b)
    args2 = (logits, part_m, part_l, i32(h), i32(h_kv), i32(s), i32(num_splits), i32(VOTE_CHUNK), votes)
    return grid1, args1, grid2, args2


def _launch(query: torch.Tensor, keys: torch.Tensor, scale: float | None = None, num_splits: int | None = None
            ) -> torch.Tensor:
    device = query.device
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    num_splits, chunk = plan_splits(query.shape[0], keys.shape[1], keys.shape[2], sms, num_splits)
    query, keys, logits, part_m, part_l, votes = prepare(query, keys, num_splits)
    names = name_expressions(query.dtype)
    first = cupy_module.get_kernel(OP, query.dtype, names, logits_name(query.dtype, query.shape[2]), device)
    second = cupy_module.get_kernel(OP, query.dtype, names, VOTE_NAME, device)
    grid1, args1, grid2, args2 = launch_args(query, keys, scale, chunk, num_splits, logits, part_m, part_l, votes)
    convert = lambda a: cupy_module.to_cupy(a) if isinstance(a, torch.Tensor) else a
    with cupy_module.torch_stream(device):
        first(grid1, (THREADS, 1, 1), tuple(convert(a) for a in args1))
        second(grid2, (THREADS, 1, 1), tuple(convert(a) for a in args2))
    return votes


def tokenselect_votes_cupy(query: torch.Tensor, keys: torch.Tensor, scale: float | None = None,
                           num_splits: int | None = None) -> torch.Tensor:
    """The CUDA kernels alone, with an optional forced number of splits (tests, benchmarks)."""
    validate(query, keys, scale)
    missing = cupy_module.cupy_unavailable_reason() or (None if query.is_cuda else "the tensors are on the CPU")
    if missing is not None:
        raise BackendUnavailableError(f"tokenselect_votes_cupy cannot run: {missing}")
    lacking = kernel_support(query, keys, scale)
    if lacking is not None:
        raise ValueError(f"tokenselect_votes_cupy does not cover this call: {lacking}")
    return _launch(query, keys, scale, num_splits)


register(KernelOp(OP, reference=_reference, validate=validate, launcher=_launch, supports=kernel_support,
                  source=OP, instantiations=tuple(dict.fromkeys(
                      n for dtype in KERNEL_DTYPES for n in name_expressions(dtype)))))


def tokenselect_votes(query: torch.Tensor, keys: torch.Tensor, scale: float | None = None, *,
                      backend: str | None = None) -> torch.Tensor:
    """Soft votes [B, H_kv, S] (fp32): per query head softmax of scale * q.k over all keys, summed per KV head.

    query [B, H, D] (one decode query per head), keys [B, H_kv, S, D]; scale defaults to D ** -0.5.
    backend: "auto" | "reference" | "cupy" (see workbench.kernels.dispatch).
    """
    return dispatch(OP, query, keys, scale, backend=backend)
