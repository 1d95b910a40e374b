"""Autoregressive decoding with the KV cache: greedy or seeded sampling, EOS and stop strings.

One forward over the prompt (prefill; the LM head runs on its last position only, as in HF's generate), then one
forward per new token over the growing cache. A string prompt is encoded with the tokenizer's special tokens (a
BOS where the tokenizer adds one); pass token ids for full control.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from workbench.models.outputs import Generation
from workbench.models.sampling import (
    check_sampling,
    make_generator,
    pick_token,
)

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models.lm import LM


def eos_ids(lm: LM) -> set[int]:
    """End-of-sequence ids: the tokenizer's plus those of the model's config / generation config."""
    found: set[int] = set()
    candidates = [getattr(lm.tokenizer, "eos_id", None), getattr(lm.text_config, "eos_token_id", None)]
    generation_config = getattr(lm.model, "generation_config", None)
    if generation_config is not None:
        candidates.append(getattr(generation_config, "eos_token_id", None))
    for item in candidates:
        if isinstance(item, int):
            found.add(item)
        elif isinstance(item, (list, tuple)):
            found.update(int(i) for i in item)
    return found


def end_of_text(lm: LM, new_ids: Sequence[int], ends: set[int], stops: Sequence[str]) -> tuple[str | None, int | None]:
    """Whether generation ends at the token just emitted (new_ids[-1]): ("eos", None) for an end token, ("stop", i)
    when a stop string occurs in the decoded new text (i: where the first one starts), else (None, None).
    Every decode loop (autoregressive, sparse, speculative) checks emitted tokens with this, in this order."""
    if new_ids[-1] in ends:
        return "eos", None
    if stops:
        text = lm.tokenizer.decode(list(new_ids))
        hits = [text.find(s) for s in stops if s in text]
        if hits:
            return "stop", min(hits)
    return None, None


def prompt_ids(lm: LM, prompt: str | Sequence[int] | torch.Tensor) -> list[int]:
    """The prompt as token ids (a string is encoded with the tokenizer's special tokens), checked to be
    non-empty and to leave room in the context for at least one new token."""
    if isinstance(prompt, str):
        ids = list(lm.tokenizer.encode(prompt, add_special_tokens=True))
    elif isinstance(prompt, torch.Tensor):
        ids = [int(i) for i in prompt.reshape(-1).tolist()]
    else:
        try:
            ids = [int(i) for i in prompt]
        except (TypeError, ValueError):
            raise ValueError(f"prompt must be a string or a list of token ids, got {type(prompt).__name__}") from None
    if not ids:
        raise ValueError("prompt is empty: give at least one token (or a tokenizer that adds a BOS)")
    if len(ids) >= lm.max_context:
        raise ValueError(
            f"prompt too long: {len(ids)} tokens, but the model's context is {lm.max_context} tokens "
            f"(max_position_embeddings) and at least one must be left to generate"
        )
    return ids


def _check(lm: LM, prompt, max_new_tokens, temperature, top_k, top_p, stop) -> tuple[list[int], list[str]]:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    check_sampling(temperature, top_k, top_p)
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(not isinstance(s, str) or not s for s in stops):
        raise ValueError(f"stop must be None, a non-empty string or a list of non-empty strings, got {stop!r}")
    return prompt_ids(lm, prompt), stops


def generate(lm: LM, prompt: str | Sequence[int], max_new_tokens: int = 32, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             stop: str | Sequence[str] | None = None, progress: bool = False) -> Generation:
    """Generate up to `max_new_tokens` tokens (see the module docstring and `Generation`)."""
    prompt_ids, stops = _check(lm, prompt, max_new_tokens, temperature, top_k, top_p, stop)
    generator = make_generator(seed, lm.device) if temperature > 0 else None
    ends = eos_ids(lm)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_new_tokens, desc="generate", unit="tok")

    start_counters = lm.counters.snapshot()
    start = time.perf_counter()
    cache = lm.new_cache()
    logits = lm.forward(prompt_ids, cache=cache, logits_to_keep=1).logits[0, -1]  # only the row that is used
    prefill_seconds = time.perf_counter() - start
    new_ids: list[int] = []
    text_end: int | None = None
    reason = "length"
    while True:
        token = pick_token(logits, temperature, top_k, top_p, generator)
        new_ids.append(token)
        if bar is not None:
            bar.update(1)
        ended, text_end = end_of_text(lm, new_ids, ends, stops)
        if ended is not None:
            reason = ended
            break
        if len(new_ids) >= max_new_tokens:
            break
        if cache.length >= lm.max_context:
            reason = "context"
            break
        logits = lm.forward([token], cache=cache).logits[0, -1]
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()

    kept = new_ids[:-1] if reason == "eos" else new_ids
    text = lm.tokenizer.decode(kept)
    if text_end is not None:
        text = text[:text_end]
    return Generation(
        prompt_ids=prompt_ids,
        new_ids=new_ids,
        text=text,
        seconds=seconds,
        tokens_per_second=len(new_ids) / seconds if seconds > 0 else float("inf"),
        forward_calls=(lm.counters.snapshot() - start_counters).forward_calls,
        prefill_seconds=prefill_seconds,
        stop_reason=reason,
        settings={"max_new_tokens": max_new_tokens, "temperature": float(temperature), "top_k": top_k,
                  "top_p": top_p, "seed": seed, "stop": stops},
    )
