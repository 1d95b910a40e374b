"""Weight layout for few-token forwards on CPU: run a block with every Linear weight stored input-major.

`nn.Linear` keeps its weight [out, in] row-major and computes x @ W^T. With fp32 on CPU (MKL sgemm) a forward
of 4-17 tokens through that layout costs nearly one matrix-vector product per token, while the same weights
stored input-major (the [out, in] parameter a transposed view of a contiguous [in, out] tensor) go through the
blocked GEMM path; for 1-3 tokens the usual layout is as fast or faster. Measured on the default model (one
thread, weights streamed from memory, 30 layers' projections): rows 1 / 2 / 4 / 8 / 16 take 38 / 36 / 58 / 70 /
81 ms row-major and 37 / 42 / 44 / 58 / 75 ms input-major; the LM head for 8 rows 29 ms -> 17 ms. Speculative
verification forwards (root + a few draft tokens) are exactly that case.

    with input_major(lm):            # every Linear weight of lm.model swapped for its input-major copy
        lm.forward(ids, cache=cache)

The copies are made on first use and kept for the LM's lifetime (one more copy of the Linear weights in
memory); entering and leaving swap tensor pointers only. The parameters keep their shapes and values, so the
model is the same function; only the summation order inside the products differs, as it already does between
1-row and n-row products (differences ~1e-5 in fp32 logits). Tied weights (an LM head sharing the input
embedding) are one parameter and stay tied. Do not edit weights inside the block (edits land in the copy).
"""
from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models.lm import LM

_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # lm -> [(parameter, usual data, input-major)]


def is_input_major(weight: torch.Tensor) -> bool:
    """True when a 2-D [out, in] weight is stored input-major (a transposed view of a contiguous [in, out])."""
    return weight.ndim == 2 and weight.t().is_contiguous() and not weight.is_contiguous()


def _copies(lm: LM) -> list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]]:
    from workbench.models.lm import LM

    if not isinstance(lm, LM):
        raise ValueError(f"lm must be a workbench LM, got {type(lm).__name__}")
    entries = _COPIES.get(lm)
    if entries is None or any(p.data_ptr() != usual.data_ptr() for p, usual, _ in entries):  # replaced since
        seen: dict[int, torch.nn.Parameter] = {}
        for module in lm.model.modules():
            if isinstance(module, torch.nn.Linear) and module.weight.ndim == 2:
                seen.setdefault(id(module.weight), module.weight)
        with torch.no_grad():
            entries = [(p, p.data, p.data if is_input_major(p.data) else p.data.t().contiguous().t())
                       for p in seen.values()]
        _COPIES[lm] = entries
    return entries


@contextlib.contextmanager
def input_major(lm: LM) -> Iterator[LM]:
    """Within the block every Linear weight of `lm.model` is its input-major copy (see the module docstring)."""
    entries = _copies(lm)
    for param, _, copy in entries:
        param.data = copy
    try:
        yield lm
    finally:
        for param, usual, _ in entries:
            param.data = usual
