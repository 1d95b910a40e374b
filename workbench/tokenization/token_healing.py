"""Token healing, the usual fix for prompts that end mid-token, and plain ("naive") greedy decoding of a byte
prompt, as baselines for exact byte-level decoding (byte_probs.py; Phan et al., 2024, arXiv:2410.09303).

Token healing (as in guidance / Microsoft's "token healing"): encode the prompt, remove its last `back` tokens,
and constrain the first generated token to tokens whose bytes start with the removed bytes (the removed tokens
themselves included), then decode greedily as usual. The returned continuation leaves out the removed bytes, so
it continues the original prompt.

Both work on bytes: the prompt is encoded with the tokenizer's own byte encoder where there is one
(`ByteLevelLM.encode`), and the continuation is the concatenated token bytes (no UTF-8 decoding).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.tokenization.byte_probs import ByteLevelLM, _check_bytes


def _greedy(byte_lm: ByteLevelLM, ids: list[int], max_new_tokens: int, allowed: np.ndarray | None) -> bytes:
    lm = byte_lm.lm
    cache = lm.new_cache()
    logits = lm.forward(ids, cache=cache).logits[0, -1].double()
    out = b""
    for step in range(max_new_tokens):
        scores = logits.clone()
        banned = [i for i in byte_lm.tokenizer.special_ids if i != byte_lm.eos_id and i < scores.shape[0]]
        scores[banned] = float("-inf")
        if step == 0 and allowed is not None:
            mask = np.full(scores.shape[0], True)
            mask[allowed] = False
            scores[mask] = float("-inf")
        token = int(scores.argmax())
        if token == byte_lm.eos_id:
            break
        out += byte_lm.token_bytes[token] or b""
        if cache.length >= lm.max_context:
            break
        logits = lm.forward([token], cache=cache).logits[0, -1].double()
    return out


def _prompt_ids(byte_lm: ByteLevelLM, prompt: bytes) -> list[int]:
    ids = byte_lm.encode(prompt)
    if ids is None:
        raise ValueError(f"the tokenizer {byte_lm.tokenizer.name!r} cannot encode the prompt bytes (not UTF-8?)")
    return ids


def naive_generate(byte_lm: ByteLevelLM, prompt: bytes, max_new_tokens: int = 8) -> bytes:
    """Greedy token decoding after the canonical encoding of `prompt` (after `byte_lm.context_ids`)."""
    prompt = _check_bytes(prompt, "prompt")
    _check_count(max_new_tokens, "max_new_tokens")
    return _greedy(byte_lm, byte_lm.context_ids + _prompt_ids(byte_lm, prompt), max_new_tokens, None)


def token_healing_generate(byte_lm: ByteLevelLM, prompt: bytes, max_new_tokens: int = 8, back: int = 1) -> bytes:
    """Greedy decoding with token healing of the last `back` prompt tokens (see the module docstring)."""
    prompt = _check_bytes(prompt, "prompt")
    _check_count(max_new_tokens, "max_new_tokens")
    _check_count(back, "back")
    ids = _prompt_ids(byte_lm, prompt)
    back = min(back, len(ids))
    removed = b"".join(byte_lm.token_bytes[i] or b"" for i in ids[len(ids) - back:])
    kept = ids[: len(ids) - back]
    allowed = None
    if removed:
        allowed = byte_lm._starting.get(removed[:1])
        allowed = np.array([t for t in allowed if byte_lm.token_bytes[int(t)].startswith(removed)], dtype=np.int64)
    out = _greedy(byte_lm, byte_lm.context_ids + kept, max_new_tokens, allowed)
    return out[len(removed):]


def _check_count(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{param} must be an int >= 1, got {value!r}")
    return value


__all__: Sequence[str] = ("naive_generate", "token_healing_generate")
