"""How many inputs one forward may carry: a peak-memory estimate per batch row and a memory budget.

Perturbation methods (occlusion, shapley, kernel_shap) and integrated gradients score many inputs of the
prompt's length. At a few thousand tokens one batch row already needs hundreds of MB (its KV cache, one
layer's attention scores, the saved activations of a backward pass), so a fixed `batch_size` that is fine for
a 20-token prompt runs out of memory on a 2,000-token one. Each of these methods therefore takes
`memory_budget` (bytes, default `default_budget(lm)`) and splits its batches so that

    rows x row_bytes(lm, fed, context, kept, grad) <= memory_budget      (and rows <= batch_size, rows >= 1)

row_bytes is an estimate of the transient memory one row adds during a forward (model weights excluded),
from the model's sizes, e = bytes per element of its dtype:
- KV cache:   context x layers x 2 x H_kv x head_dim x e (a batch row gets its own copy when new keys are
              appended, also when its prefix is shared);
- attention:  2 x heads x fed x context x e: one layer's scores and probabilities (CPU SDPA with a mask and
              eager attention materialise them);
- layer:      fed x (4 x hidden + 3 x intermediate) x e: one layer's live activations (residual, norm, q/k/v,
              the MLP's gate, up and product);
- logits:     3 x kept x vocab x 4: kept logits, their float32 copy and log-softmax (only the positions
              that predict target tokens are computed: `LM.forward(logits_to_keep=...)`);
- backward (grad=True): every layer keeps its inputs for the backward pass,
              layers x (fed x (8 x hidden + 4 x intermediate) x e + heads x fed x context x e).
It errs on the high side; a budget below one row's estimate still runs one row at a time.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

GIB = 1 << 30
MIN_BUDGET = GIB


def check_budget(value: object, param: str = "memory_budget") -> int | None:
    """None (the default budget) or an int number of bytes >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{param} must be None (default: max(1 GiB, 2 x the model's parameter bytes)) or an int "
                         f"number of bytes >= 1, got {value!r}")
    return int(value)


def parameter_bytes(lm: Any) -> int:
    model = getattr(lm, "model", None)
    if model is None or not hasattr(model, "parameters"):
        return 0
    return sum(p.numel() * p.element_size() for p in model.parameters())


def default_budget(lm: Any) -> int:
    """max(1 GiB, 2 x the model's parameter bytes): transient memory scales with the model run."""
    return max(MIN_BUDGET, 2 * parameter_bytes(lm))


def resolve_budget(lm: Any, budget: int | None) -> int:
    return default_budget(lm) if budget is None else budget


def dims(lm: Any) -> dict[str, int]:
    """The sizes the estimate needs, with fallbacks for duck-typed models (e.g. the tests' linear model)."""
    text = getattr(lm, "text_config", None)
    hidden = int(getattr(lm, "hidden_size", None) or getattr(text, "hidden_size", 0) or 0)
    heads = int(getattr(lm, "num_heads", 1) or 1)
    kv_heads = int(getattr(lm, "num_kv_heads", None) or heads)
    head_dim = int(getattr(lm, "head_dim", None) or max(hidden // heads, 1))
    inter = int(getattr(text, "intermediate_size", None) or 4 * hidden)
    dtype = getattr(lm, "dtype", None)
    element = int(getattr(dtype, "itemsize", 4) or 4)
    return {"layers": int(getattr(lm, "num_layers", 1)), "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
            "hidden": hidden, "intermediate": inter, "vocab": int(lm.vocab_size), "element": element}


def row_bytes(lm: Any, fed: int, context: int, kept: int, grad: bool = False) -> int:
    """Estimated peak transient bytes of one batch row feeding `fed` tokens over `context` total positions and
    computing logits at `kept` positions (see the module docstring)."""
    d = dims(lm)
    e = d["element"]
    kv = context * d["layers"] * 2 * d["kv_heads"] * d["head_dim"] * e
    scores = d["heads"] * fed * context * e
    layer = fed * (4 * d["hidden"] + 3 * d["intermediate"]) * e
    logits = 3 * kept * d["vocab"] * 4
    total = kv + 2 * scores + layer + logits
    if grad:
        total += d["layers"] * (fed * (8 * d["hidden"] + 4 * d["intermediate"]) * e + scores)
    return int(total)


def rows_per_batch(lm: Any, budget: int, batch_size: int, fed: int, context: int, kept: int,
                   grad: bool = False) -> int:
    """How many rows of equal shape fit the budget: in [1, batch_size]."""
    return max(1, min(batch_size, budget // max(row_bytes(lm, fed, context, kept, grad), 1)))


def plan_chunks(starts: np.ndarray, batch_size: int, fits: Callable[[int, int], bool]) -> list[np.ndarray]:
    """Split inputs, sorted so that `starts` (the first position each must feed) does not increase, into
    consecutive chunks of at most batch_size rows where `fits(rows, start)` holds for the chunk's smallest start
    (one row always forms a chunk). Returns index arrays into `starts`."""
    chunks, i, n = [], 0, len(starts)
    while i < n:
        j = i + 1
        while j < n and j - i < batch_size and fits(j - i + 1, int(starts[j])):
            j += 1
        chunks.append(np.arange(i, j))
        i = j
    return chunks
