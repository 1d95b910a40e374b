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
