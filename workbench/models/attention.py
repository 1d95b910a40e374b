"""The attention override: route every layer's attention through a Python function.

`with lm.attention(fn):` makes every attention layer call

    fn(query, key, value, *, layer_idx, scaling, attention_mask, module) -> output [B, H, T, D]
                                                                            (or (output, weights [B, H, T, S]))

with query [B, H, T, D] (rotary embedding applied), key / value the cache's un-repeated KV heads
[B, H_kv, S, D] (S = cached positions + the T new ones, new ones last), `scaling` the model's softmax scale and
`attention_mask` an additive float mask [B | 1, 1, T, S] (0 = attend, dtype-min = masked) that already holds
causality, a caller's custom (tree) mask, and the sliding window of local layers. It is None only if some other
code path skipped mask creation; then plain causal attention with the queries at the last T key slots is meant
(`reference_attention` handles both). `module` is the HF attention module (for extra attributes such as
`attn_logit_softcapping`).

It goes through transformers' attention registry (`AttentionInterface.register`, selected with
`model.set_attn_implementation`) rather than forked model code. One adapter is registered once under
ATTENTION_NAME, together with transformers' eager mask builder so that masks are always materialized; the
adapter finds the active function on the attention module itself, so different LMs (and nested overrides)
do not interfere.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

ATTENTION_NAME = "workbench_override"
FN_ATTRIBUTE = "_workbench_attention_fn"

AttentionFn = Callable[..., "torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]"]


def reference_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, layer_idx: int | None = None,
                        scaling: float, attention_mask: torch.Tensor | None = None, module=None,
                        return_weights: bool = False):
    """Plain attention, the meaning every override is measured against (Vaswani et al. 2017).

    softmax(Q K^T * scaling [softcapped as the module asks] + mask) V. GQA: query head h reads KV head
    h // groups, computed by stacking each KV head's query heads (no repeated copy of the keys and values).
    Returns [B, H, T, D], or (output, probabilities [B, H, T, S]) when return_weights.
    """
    b, h, t, d = query.shape
    h_kv, s = key.shape[1], key.shape[2]
    grouped = query.reshape(b, h_kv, (h // h_kv) * t, d)  # query heads of one KV head, rows stacked
    scores = torch.matmul(grouped, key.transpose(-1, -2)).reshape(b, h, t, s) * scaling
    softcap = getattr(module, "attn_logit_softcapping", None)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is None:
        new, total = query.shape[2], key.shape[2]
        q_slot = torch.arange(total - new, total, device=query.device)[:, None]
        k_slot = torch.arange(total, device=query.device)[None, :]
        scores = scores.masked_fill(k_slot > q_slot, float("-inf"))
    else:
        scores = scores + attention_mask
    probs = torch.softmax(scores.float(), dim=-1).to(query.dtype)
    out = torch.matmul(probs.reshape(b, h_kv, -1, s), value).reshape(b, h, t, value.shape[-1])
    return (out, probs) if return_weights else out


def _adapter(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    fn = getattr(module, FN_ATTRIBUTE, None)
    if fn is None:
        raise RuntimeError(
            f"attention implementation {ATTENTION_NAME!r} is selected but no function is set on layer "
            f"{getattr(module, 'layer_idx', '?')}; use `with lm.attention(fn):`"
        )
    if scaling is None:
        scaling = module.head_dim ** -0.5
    result = fn(query, key, value, layer_idx=module.layer_idx, scaling=scaling, attention_mask=attention_mask,
                module=module)
    out, weights = result if isinstance(result, tuple) else (result, None)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(query.shape[:3]) + (value.shape[-1],):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"attention override returned {got} at layer {module.layer_idx}; expected "
            f"[B, H, T, D] = {tuple(query.shape[:3]) + (value.shape[-1],)}"
        )
    return out.transpose(1, 2).contiguous(), weights


def register() -> str:
    """Register the adapter (idempotent) and return its implementation name."""
    AttentionInterface.register(ATTENTION_NAME, _adapter)
    AttentionMaskInterface.register(ATTENTION_NAME, eager_mask)
    return ATTENTION_NAME


def attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's attention modules (those with a `layer_idx` and q/k/v projections), in layer order."""
    found = [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "q_proj")]
    return sorted(found, key=lambda m: m.layer_idx)
