"""Helpers shared by the drafter tests of the draft-model family."""
from __future__ import annotations

import copy

import torch

from workbench.models import LM
from workbench.speculative import probs_from_logits


def padded_copy(lm: LM, rows: int) -> LM:
    """The same model with its embedding / LM head padded to `rows` tokens (new rows random): logits over the
    real vocabulary are unchanged, as with Qwen2.5's embeddings padded beyond the tokenizer."""
    model = copy.deepcopy(lm.model)
    model.resize_token_embeddings(rows, mean_resizing=False)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        head = model.get_output_embeddings().weight
        head[lm.vocab_size:] = torch.randn(head[lm.vocab_size:].shape, generator=gen) * 5
    return LM(model, lm.tokenizer)


def brute_force_row(draft: LM, ids: list[int], sampling, width: int) -> torch.Tensor:
    """The processed draft distribution after `ids`, recomputed from scratch without a cache, at the target width."""
    logits = draft.forward(ids).logits[0, -1].to(torch.float32)
    aligned = torch.full((width,), float("-inf"))
    keep = min(width, logits.shape[0], draft.tokenizer.vocab_size)
    aligned[:keep] = logits[:keep]
    return probs_from_logits(aligned, sampling.temperature, sampling.top_k, sampling.top_p)


REPETITIVE_CODE_PROMPT = ("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\n"
                          "def mul(a, b):\n    return a * b\n\n\ndef")


def greedy_on_default_model(drafter, max_new_tokens: int = 32, budget: int = 16):
    """Speculative and autoregressive greedy decoding of REPETITIVE_CODE_PROMPT on smollm2-135m:
    (speculative generation, autoregressive generation)."""
    from workbench.speculative import speculative_generate

    lm = LM.load("smollm2-135m")
    ref = lm.generate(REPETITIVE_CODE_PROMPT, max_new_tokens=max_new_tokens)
    spec = speculative_generate(lm, REPETITIVE_CODE_PROMPT, drafter, max_new_tokens=max_new_tokens, budget=budget)
    return spec, ref
