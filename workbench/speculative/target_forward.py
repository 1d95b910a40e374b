"""The target forward of a speculative step on CPU: (root, draft nodes...) over the cached prefix, made cheap.

A verification forward feeds a handful of tokens; on CPU in fp32 two things of the default path cost more than
they must there (measured on the default model, one thread, a prefix of 300 tokens):
- transformers' SDPA path repeats every cached key/value head for grouped-query attention whenever a mask is
  present (any forward of more than one token), copying the whole cache each layer; `gqa_attention` passes the
  un-repeated heads to `scaled_dot_product_attention(enable_gqa=True)` with the same mask instead (identical
  outputs; 9 queries over 300 keys: 195 -> 104 us a layer);
- the Linear layers of a forward of 4 or more tokens run much faster with input-major weights
  (`workbench.models.layout`), while 1-3 tokens are as fast or faster in the usual layout.

The input-major copy doubles the memory of the Linear weights, so `speculative_generate` turns it on by default
only on CPU and for models whose Linear weights take at most INPUT_MAJOR_MAX_BYTES (1 GiB: the default 135M
model's 0.5 GiB, not the Qwen 0.5B / 1.5B pair).

`TargetForward(lm)` is entered once per generation (switching the attention implementation costs milliseconds
on a 30-layer model, too much per step) and called per step; forwards of `input_major_from` tokens or more run
inside `input_major(lm)`. Both only change how the same function is computed (summation order).
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from workbench.models.attention import reference_attention
from workbench.models.layout import input_major

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM
    from workbench.models.cache import KVCache
    from workbench.models.outputs import ForwardOutput

INPUT_MAJOR_FROM = 4  # fed tokens from which the Linear layers run input-major (module docstring)
INPUT_MAJOR_MAX_BYTES = 2**30  # by default, only models whose Linear weights fit in 1 GiB get the extra copy


def linear_weight_bytes(lm: LM) -> int:
    """Bytes of the distinct Linear weights of `lm.model` (what `input_major` copies once)."""
    seen = {id(m.weight): m.weight for m in lm.model.modules() if isinstance(m, torch.nn.Linear)}
    return sum(w.numel() * w.element_size() for w in seen.values())


def default_input_major(lm: LM) -> bool:
    """The default of `input_major=None`: on CPU, for models whose Linear weights take <= INPUT_MAJOR_MAX_BYTES."""
    return lm.device.type == "cpu" and linear_weight_bytes(lm) <= INPUT_MAJOR_MAX_BYTES


def gqa_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, layer_idx: int | None = None,
                  scaling: float, attention_mask: torch.Tensor | None = None, module=None) -> torch.Tensor:
    """SDPA over the un-repeated KV heads (enable_gqa) with the layer's mask; `reference_attention` where the
    layer softcaps its logits or no mask was built for a multi-token query (see workbench.models.attention)."""
    if getattr(module, "attn_logit_softcapping", None) is not None or (attention_mask is None and query.shape[2] > 1):
        return reference_attention(query, key, value, layer_idx=layer_idx, scaling=scaling,
                                   attention_mask=attention_mask, module=module)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=scaling,
                                          enable_gqa=query.shape[1] != key.shape[1])


class TargetForward:
    """`with TargetForward(lm, ...) as forward:` then `forward(ids, cache, position_ids, attention_mask)`.

    gqa: route attention through `gqa_attention` for the block; input_major_from: fed-token count from which
    forwards run with input-major weights (None: never).
    """

    def __init__(self, lm: LM, gqa: bool = True, input_major_from: int | None = INPUT_MAJOR_FROM):
        self.lm = lm
        self.gqa = gqa
        self.input_major_from = input_major_from
        self._stack: contextlib.ExitStack | None = None

    def __enter__(self) -> TargetForward:
        self._stack = contextlib.ExitStack()
        if self.gqa:
            self._stack.enter_context(self.lm.attention(gqa_attention))
        return self

    def __exit__(self, *exc) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __call__(self, ids: list[int], cache: KVCache, position_ids: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None) -> ForwardOutput:
        if self.input_major_from is not None and len(ids) >= self.input_major_from:
            with input_major(self.lm):
                return self.lm.forward(ids, cache=cache, position_ids=position_ids, attention_mask=attention_mask)
        return self.lm.forward(ids, cache=cache, position_ids=position_ids, attention_mask=attention_mask)
