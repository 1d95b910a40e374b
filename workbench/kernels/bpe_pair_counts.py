"""BPE pair counting: the count of every adjacent token pair over a word-frequency table held in flat arrays.

Word w is ids[offsets[w] : offsets[w + 1]] and occurs counts[w] times; pair (a, b) counts
sum over words w of counts[w] * (number of positions t in w with (ids[t], ids[t + 1]) = (a, b)),
the initial pair counts of a BPE trainer (Sennrich et al. 2016) over its word table. The result lists every pair
with a positive count, sorted by (left, right): `PairCounts(left, right, count)`, all int64.

The PyTorch reference packs each pair into one int64 key and reduces with torch.unique + index_add (a sort-based
reduction). The CUDA kernel (kernels_cu/bpe_pair_counts.cu) instead inserts every pair into an open-addressing
hash table in GPU memory (atomicCAS on the packed key, atomicAdd of the word's count; capacity a power of two of
at least twice the adjacent positions), one thread per word; the occupied slots are then sorted by key with
torch, so both give the same arrays. Token ids must lie in [0, 2^31) (two ids share one 64-bit key).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from workbench.kernels import cupy_module
from workbench.kernels.dispatch import (
    BackendUnavailableError,
    KernelOp,
    dispatch,
    register,
)

OP = "bpe_pair_counts"
KERNEL_DTYPES = {torch.int32: "int", torch.int64: "long long"}
THREADS = 256  # WB_THREADS in the .cu file
MAX_BLOCKS = 65535
MIN_CAPACITY = 1024
ID_LIMIT = 2**31


class PairCounts(NamedTuple):
    """Every pair with a positive count, sorted by (left, right): left, right, count [P] (int64)."""

    left: torch.Tensor
    right: torch.Tensor
    count: torch.Tensor

    def to_dict(self) -> dict[tuple[int, int], int]:
        """{(left, right): count} as Python ints."""
        return {(a, b): c for a, b, c in zip(self.left.tolist(), self.right.tolist(), self.count.tolist())}


def kernel_name(dtype: torch.dtype) -> str:
    return f"bpe_pair_count_insert<{KERNEL_DTYPES[dtype]}>"


def validate(ids: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor, check_values: bool = True) -> None:
    """Raise ValueError, naming the argument and what is allowed, unless the arguments are well formed.

    check_values=False skips the value checks (ids in [0, 2^31), offsets from 0 to T nondecreasing, counts >= 0),
    which cost a pass over the arrays and a device sync.
    """
    for name, t in (("ids", ids), ("offsets", offsets), ("counts", counts)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 1 or t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"{name} must be a one-dimensional integer tensor, got {t.dtype} {tuple(t.shape)}")
    if offsets.shape[0] != counts.shape[0] + 1:
        raise ValueError(f"offsets must have W + 1 = {counts.shape[0] + 1} entries for W = {counts.shape[0]} word "
                         f"counts, got {offsets.shape[0]}")
    for name, t in (("offsets", offsets), ("counts", counts)):
        if t.device != ids.device:
            raise ValueError(f"{name} is on {t.device} but ids is on {ids.device}; all tensors must share one device")
    if not check_values:
        return
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= ID_LIMIT):
        raise ValueError(f"ids must lie in [0, 2^31), got values from {int(ids.min())} to {int(ids.max())}")
    if int(offsets[0]) != 0 or int(offsets[-1]) != ids.shape[0] or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"offsets must rise from 0 to T={ids.shape[0]} (word w is ids[offsets[w]:offsets[w + 1]]), "
                         f"got {offsets[:8].tolist()}{' ...' if offsets.shape[0] > 8 else ''}")
    if counts.numel() and int(counts.min()) < 0:
        raise ValueError(f"counts must be >= 0, got {int(counts.min())}")


def _reference(ids: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor,
               check_values: bool = True) -> PairCounts:
    ids, offsets, counts = ids.long(), offsets.long(), counts.long()
    lengths = offsets[1:] - offsets[:-1]
    word = torch.repeat_interleave(torch.arange(len(counts), device=ids.device), lengths)  # word of each position
    inside = word[:-1] == word[1:]  # positions t whose successor is in the same word
    keys = (ids[:-1] << 32 | ids[1:])[inside]
    weights = counts[word[:-1][inside]]
    keys, weights = keys[weights > 0], weights[weights > 0]
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    total = torch.zeros(len(unique), dtype=torch.int64, device=ids.device).index_add_(0, inverse, weights)
    return PairCounts(unique >> 32, unique & 0xFFFFFFFF, total)


def bpe_pair_counts_reference(ids: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor,
                              check_values: bool = True) -> PairCounts:
    """The PyTorch definition of `bpe_pair_counts` (any device, any integer dtype)."""
    validate(ids, offsets, counts, check_values)
    return _reference(ids, offsets, counts)


def kernel_support(ids: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor,
                   check_values: bool = True) -> str | None:
    """None when the CUDA kernel covers this (valid) call, else what it lacks."""
    if ids.dtype not in KERNEL_DTYPES:
        return f"ids dtype {ids.dtype}; the kernel has {[str(d) for d in KERNEL_DTYPES]}"
    return None


def table_capacity(positions: int) -> int:
    """The hash table's slot count: a power of two >= 2 x the adjacent positions (at most half full)."""
    return max(MIN_CAPACITY, 1 << (2 * max(positions, 1) - 1).bit_length())


def prepare(ids: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor) -> tuple:
    """Contiguous inputs (int64 offsets and counts), the empty table (keys all ones, values 0) and the grid."""
    ids = ids.contiguous()
    offsets = offsets.to(torch.int64).contiguous()
    counts = counts.to(torch.int64).contiguous()
    capacity = table_capacity(ids.shape[0])
    keys = torch.full((capacity,), -1, dtype=torch.int64, device=ids.device)
    values = torch.zeros(capacity, dtype=torch.int64, device=ids.device)
    grid = (max(1, min(MAX_BLOCKS, -(-counts.shape[0] // THREADS))), 1, 1)
    return ids, offsets, counts, keys, values, grid


def launch_args(ids: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor, keys: torch.Tensor,
                values: torch.Tensor) -> tuple:
    """The kernel's arguments in order (tensors and numpy scalars)."""
    return ids, offsets, counts, np.int64(counts.shape[0]), keys, values, np.uint64(keys.shape[0] - 1)


def finish(keys: torch.Tensor, values: torch.Tensor) -> PairCounts:
    """The occupied slots of the table, sorted by packed key (= by (left, right))."""
    occupied = keys != -1
    found, order = torch.sort(keys[occupied])
    return PairCounts(found >> 32, found & 0xFFFFFFFF, values[occupied][order])


def _launch(ids: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor, check_values: bool = True) -> PairCounts:
    device = ids.device
    ids, offsets, counts, keys, values, grid = prepare(ids, offsets, counts)
    kernel = cupy_module.get_kernel(OP, ids.dtype, [kernel_name(ids.dtype)], kernel_name(ids.dtype), device)
    args = launch_args(ids, offsets, counts, keys, values)
    with cupy_module.torch_stream(device):
        kernel(grid, (THREADS, 1, 1), tuple(cupy_module.to_cupy(a) if isinstance(a, torch.Tensor) else a for a in args))
    return finish(keys, values)


def bpe_pair_counts_cupy(ids: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor,
                         check_values: bool = True) -> PairCounts:
    """The CUDA kernel alone (tests, benchmarks)."""
    validate(ids, offsets, counts, check_values)
    missing = cupy_module.cupy_unavailable_reason() or (None if ids.is_cuda else "the tensors are on the CPU")
    if missing is not None:
        raise BackendUnavailableError(f"bpe_pair_counts_cupy cannot run: {missing}")
    lacking = kernel_support(ids, offsets, counts)
    if lacking is not None:
        raise ValueError(f"bpe_pair_counts_cupy does not cover this call: {lacking}")
    return _launch(ids, offsets, counts)


register(KernelOp(OP, reference=_reference, validate=validate, launcher=_launch, supports=kernel_support,
                  source=OP, instantiations=tuple(kernel_name(dtype) for dtype in KERNEL_DTYPES)))


def bpe_pair_counts(ids: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor, *, check_values: bool = True,
                    backend: str | None = None) -> PairCounts:
    """Adjacent-pair counts of the word table (ids [T], offsets [W + 1], counts [W]) -> PairCounts.

    See the module docstring. backend: "auto" | "reference" | "cupy" (see workbench.kernels.dispatch).
    """
    return dispatch(OP, ids, offsets, counts, check_values, backend=backend)
