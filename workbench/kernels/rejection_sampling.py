"""Batched speculative rejection sampling with residual resampling, for B independent rows (chains, positions).

Row b holds the target distribution p[b] and the draft distribution q[b] over a vocabulary of V tokens, the
drafted token x = draft[b] (-1: nothing drafted, the row draws a bonus token from p) and two uniforms in [0, 1)
that the caller supplies (so that results are reproducible and the law can be integrated exactly). In float64:

    accepted[b] = x >= 0 and u_accept[b] * q[b, x] < p[b, x]          (probability min(1, p(x) / q(x)))
    token[b]    = x if accepted, else the inverse CDF at u_sample[b] of the weights
                  w = max(p - q, 0) after a rejection (p itself if that is all zero), w = p without a draft:
                  with C_j = w_0 + ... + w_j, the first j with w_j > 0 and C_j > u_sample * C_{V-1}
                  (the last j with w_j > 0 if rounding leaves none).

That is the accept/resample step of speculative sampling (Leviathan, Kalman & Matias 2023; Chen et al. 2023),
whose output token is distributed exactly as p for x ~ q. The PyTorch reference below writes the rule in
float64; the CUDA kernel (kernels_cu/rejection_sampling.cu, one block per row) computes the same in float64, its
cumulative sums grouped by thread chunks: the token can differ from the reference only when u_sample * C_{V-1}
lies within float64 rounding of some C_j (probability of order 1e-16 per row).
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

OP = "rejection_sampling"
KERNEL_DTYPES = {torch.float32: "float", torch.float64: "double"}
THREADS = 256  # WB_THREADS in the .cu file
MAX_GRID_X = 2**31 - 1


class RejectionSample(NamedTuple):
    """accepted [B] bool (the drafted token was kept), token [B] int64 (the kept, resampled or bonus token)."""

    accepted: torch.Tensor
    token: torch.Tensor


def kernel_name(dtype: torch.dtype) -> str:
    return f"rejection_sample<{KERNEL_DTYPES[dtype]}>"


def validate(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u_accept: torch.Tensor, u_sample: torch.Tensor,
             check_values: bool = True) -> None:
    """Raise ValueError, naming the argument and what is allowed, unless the arguments are well formed.

    check_values=False skips the value checks (probabilities >= 0 with a positive row sum, draft tokens in
    [-1, V), uniforms in [0, 1)), which cost a pass over p and q and a device sync.
    """
    for name, t in (("p", p), ("q", q), ("draft", draft), ("u_accept", u_accept), ("u_sample", u_sample)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if p.ndim != 2 or min(p.shape) < 1:
        raise ValueError(f"p must be [B, V] target probabilities with B, V >= 1, got shape {tuple(p.shape)}")
    rows, vocab = p.shape
    if q.shape != p.shape:
        raise ValueError(f"q must have the shape of p {tuple(p.shape)}, got {tuple(q.shape)}")
    if not p.dtype.is_floating_point or q.dtype != p.dtype:
        raise ValueError(f"p and q must share one floating dtype, got {p.dtype} and {q.dtype}")
    if tuple(draft.shape) != (rows,) or draft.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"draft must be an int32/int64 tensor [B={rows}] (-1: no draft), got "
                         f"{draft.dtype} {tuple(draft.shape)}")
    for name, u in (("u_accept", u_accept), ("u_sample", u_sample)):
        if tuple(u.shape) != (rows,) or not u.dtype.is_floating_point:
            raise ValueError(f"{name} must be a floating tensor [B={rows}] of uniforms in [0, 1), got "
                             f"{u.dtype} {tuple(u.shape)}")
    for name, t in (("q", q), ("draft", draft), ("u_accept", u_accept), ("u_sample", u_sample)):
        if t.device != p.device:
            raise ValueError(f"{name} is on {t.device} but p is on {p.device}; all tensors must share one device")
    if not check_values:
        return
    for name, t in (("p", p), ("q", q)):
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            raise ValueError(f"{name} must hold probabilities (finite, >= 0)")
    if not bool((p.sum(-1) > 0).all()):
        raise ValueError(f"p has a row with no mass (row {int((p.sum(-1) <= 0).nonzero()[0])}); every row needs a "
                         "positive sum")
    if bool(((draft < -1) | (draft >= vocab)).any()):
        raise ValueError(f"draft tokens must lie in [-1, V={vocab}) (-1: no draft), got values from "
                         f"{int(draft.min())} to {int(draft.max())}")
    for name, u in (("u_accept", u_accept), ("u_sample", u_sample)):
        if bool(((u < 0) | (u >= 1)).any()) or not bool(torch.isfinite(u).all()):
            raise ValueError(f"{name} must lie in [0, 1), got values from {float(u.min())} to {float(u.max())}")


def _reference(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u_accept: torch.Tensor,
               u_sample: torch.Tensor, check_values: bool = True) -> RejectionSample:
    p, q = p.double(), q.double()
    vocab = p.shape[1]
    drafted = draft >= 0
    x = draft.long().clamp_min(0)
    p_x = p.gather(1, x[:, None])[:, 0]
    q_x = q.gather(1, x[:, None])[:, 0]
    accepted = drafted & (u_accept.double() * q_x < p_x)
    residual = (p - q).clamp_min(0)
    from_p = ~drafted | ~(residual > 0).any(-1)
    weights = torch.where(from_p[:, None], p, residual)
    cumulative = weights.cumsum(-1)
    target = u_sample.double() * cumulative[:, -1]
    positive = weights > 0
    hit = positive & (cumulative > target[:, None])
    first = hit.int().argmax(-1)  # the first True
    last = vocab - 1 - positive.flip(-1).int().argmax(-1)
    sampled = torch.where(hit.any(-1), first, last)
    return RejectionSample(accepted, torch.where(accepted, x, sampled))


def rejection_sampling_reference(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u_accept: torch.Tensor,
                                 u_sample: torch.Tensor, check_values: bool = True) -> RejectionSample:
    """The PyTorch definition of `rejection_sampling` (any device, any floating dtype; float64 arithmetic)."""
    validate(p, q, draft, u_accept, u_sample, check_values)
    return _reference(p, q, draft, u_accept, u_sample)


def kernel_support(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u_accept: torch.Tensor,
                   u_sample: torch.Tensor, check_values: bool = True) -> str | None:
    """None when the CUDA kernel covers this (valid) call, else what it lacks."""
    if p.dtype not in KERNEL_DTYPES:
        return f"dtype {p.dtype}; the kernel has {[str(d) for d in KERNEL_DTYPES]}"
    if p.shape[1] >= 2**31:
        return f"V={p.shape[1]}; the kernel indexes the vocabulary with int32"
    if p.shape[0] > MAX_GRID_X:
        return f"B={p.shape[0]} exceeds the grid limit {MAX_GRID_X}"
    return None


def prepare(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u_accept: torch.Tensor,
            u_sample: torch.Tensor) -> tuple:
    """Layouts the kernel reads (rows with contiguous entries, int64 drafts, float64 uniforms) and the outputs."""
    p = p if p.stride(-1) == 1 else p.contiguous()
    q = q if q.stride(-1) == 1 else q.contiguous()
    draft = draft.to(torch.int64).contiguous()
    u_accept = u_accept.to(torch.float64).contiguous()
    u_sample = u_sample.to(torch.float64).contiguous()
    accepted = torch.empty(p.shape[0], dtype=torch.bool, device=p.device)
    token = torch.empty(p.shape[0], dtype=torch.int64, device=p.device)
    return p, q, draft, u_accept, u_sample, accepted, token


def launch_args(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u_accept: torch.Tensor,
                u_sample: torch.Tensor, accepted: torch.Tensor, token: torch.Tensor) -> tuple:
    """The kernel's arguments in order (tensors and numpy scalars); the grid is (B, 1, 1)."""
    return (p, q, np.int64(p.stride(0)), np.int64(q.stride(0)), draft, u_accept, u_sample, np.int32(p.shape[1]),
            accepted.view(torch.uint8), token)


def _launch(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u_accept: torch.Tensor, u_sample: torch.Tensor,
            check_values: bool = True) -> RejectionSample:
    device = p.device
    p, q, draft, u_accept, u_sample, accepted, token = prepare(p, q, draft, u_accept, u_sample)
    kernel = cupy_module.get_kernel(OP, p.dtype, [kernel_name(p.dtype)], kernel_name(p.dtype), device)
    args = launch_args(p, q, draft, u_accept, u_sample, accepted, token)
    with cupy_module.torch_stream(device):
        kernel((p.shape[0], 1, 1), (THREADS, 1, 1),
               tuple(cupy_module.to_cupy(a) if isinstance(a, torch.Tensor) else a for a in args))
    return RejectionSample(accepted, token)


def rejection_sampling_cupy(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u_accept: torch.Tensor,
                            u_sample: torch.Tensor, check_values: bool = True) -> RejectionSample:
    """The CUDA kernel alone (tests, benchmarks)."""
    validate(p, q, draft, u_accept, u_sample, check_values)
    missing = cupy_module.cupy_unavailable_reason() or (None if p.is_cuda else "the tensors are on the CPU")
    if missing is not None:
        raise BackendUnavailableError(f"rejection_sampling_cupy cannot run: {missing}")
    lacking = kernel_support(p, q, draft, u_accept, u_sample)
    if lacking is not None:
        raise ValueError(f"rejection_sampling_cupy does not cover this call: {lacking}")
    return _launch(p, q, draft, u_accept, u_sample)


register(KernelOp(OP, reference=_reference, validate=validate, launcher=_launch, supports=kernel_support,
                  source=OP, instantiations=tuple(kernel_name(dtype) for dtype in KERNEL_DTYPES)))


def rejection_sampling(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u_accept: torch.Tensor,
                       u_sample: torch.Tensor, *, check_values: bool = True,
                       backend: str | None = None) -> RejectionSample:
    """Accept or resample B rows at once: p, q [B, V], draft [B] (-1: none), uniforms [B] -> (accepted, token).

    See the module docstring for the exact rule. backend: "auto" | "reference" | "cupy" (see
    workbench.kernels.dispatch).
    """
    return dispatch(OP, p, q, draft, u_accept, u_sample, check_values, backend=backend)
