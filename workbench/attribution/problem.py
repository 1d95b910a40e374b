"""One attribution problem: the tokenized prompt, its source units, the resolved target, and how to score it.

The model input is `prefix + source + continuation`:
- prefix: special tokens the tokenizer adds before the text (a BOS), part of the context but never attributed;
- source: the prompt's tokens (with byte offsets), the columns of the attribution;
- continuation: the target's teacher-forced tokens (see targets.py).

`scores(source_embeds)` runs the full sequence for a batch of source embeddings [B, n, hidden] (perturbed,
interpolated, or requiring grad) and returns the target scores [B, R]; gradient methods differentiate it.
Perturbation methods go through `workbench.attribution.perturb`, which adds batching and KV-cache reuse.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.attribution.targets import ResolvedTarget
from workbench.attribution.units import Unit, aggregation_matrix
from workbench.tokenization.protocol import InputTypeError


@dataclass
class Prompt:
    """A validated, tokenized prompt (no model work yet)."""

    text: str
    prefix_ids: list[int]
    ids: list[int]
    offsets: list[tuple[int, int]]

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8")


def check_prompt(lm: Any, prompt: object) -> Prompt:
    """Validate and tokenize the prompt; leading special tokens the tokenizer adds (BOS) become the prefix."""
    if not isinstance(prompt, str):
        raise InputTypeError(f"prompt must be a non-empty string, got {type(prompt).__name__}")
    if prompt == "":
        raise ValueError("prompt is empty: give a non-empty string to attribute over")
    tok = lm.tokenizer
    ids, offsets = tok.encode_with_offsets(prompt)
    if not ids:
        raise ValueError(f"prompt {prompt!r} tokenizes to no tokens with tokenizer {tok.name!r}: nothing to attribute")
    bad = [i for i in ids if not 0 <= i < lm.vocab_size]
    if bad:
        raise ValueError(f"prompt tokenizes to id(s) {bad[:5]} outside the model's vocabulary [0, {lm.vocab_size})")
    with_special = list(tok.encode(prompt, add_special_tokens=True))
    prefix: list[int] = []
    for start in range(len(with_special) - len(ids) + 1):
        if with_special[start:start + len(ids)] == list(ids):
            prefix = with_special[:start]
            break
    return Prompt(prompt, prefix, list(ids), [tuple(o) for o in offsets])


@dataclass
class Problem:
    """Everything a method needs: the model, the prompt, its units and the target."""

    lm: Any
    prompt: Prompt
    units: list[Unit]
    target: ResolvedTarget

    # ---- sizes ---------------------------------------------------------------------------------------------
    @property
    def n_prefix(self) -> int:
        return len(self.prompt.prefix_ids)

    @property
    def n_tokens(self) -> int:
        """Number of source tokens."""
        return len(self.prompt.ids)

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def prompt_len(self) -> int:
        """Prefix plus source tokens: the position of the first continuation token."""
        return self.n_prefix + self.n_tokens

    @property
    def num_rows(self) -> int:
        return self.target.num_rows

    def aggregation(self) -> np.ndarray:
        """[n_tokens, n_units] 0/1 matrix summing token columns into unit columns."""
        return aggregation_matrix(self.units, self.n_tokens)

    def unit_token_mask(self, unit_masks: np.ndarray) -> np.ndarray:
        """[B, n_units] keep-masks over units -> [B, n_tokens] keep-masks over source tokens."""
        out = np.ones((unit_masks.shape[0], self.n_tokens), dtype=bool)
        for u, unit in enumerate(self.units):
            out[:, unit.token_indices] = unit_masks[:, u:u + 1]
        return out

    # ---- embeddings ----------------------------------------------------------------------------------------
    def embed(self, ids: list[int]) -> torch.Tensor:
        """Input embeddings [1, len(ids), hidden], detached."""
        with torch.no_grad():
            return self.lm.embed(ids).detach()

    def source_embeds(self) -> torch.Tensor:
        """The prompt's source-token embeddings [1, n, hidden]."""
        return self.embed(self.prompt.ids)

    # ---- scoring -------------------------------------------------------------------------------------------
    def full_embeds(self, source: torch.Tensor, continuation: list[int]) -> torch.Tensor:
        """prefix + source [B, n, hidden] + continuation embeddings -> [B, T, hidden]."""
        batch = source.shape[0]
        parts = []
        if self.prompt.prefix_ids:
            parts.append(self.embed(self.prompt.prefix_ids).expand(batch, -1, -1))
        parts.append(source)
        if continuation:
            parts.append(self.embed(continuation).expand(batch, -1, -1))
        return torch.cat(parts, dim=1)

    def scores(self, source: torch.Tensor, output_attentions: bool = False
               ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Target scores [B, R] for source embeddings [B, n, hidden], one full forward per continuation.

        Differentiable w.r.t. `source` when it requires grad. With output_attentions, also the attentions of
        the first continuation's forward (per layer [B, H, T, T]). Logits are computed only at the positions
        that predict continuation tokens (and the one after the last), never over the whole prompt.
        """
        logits, attentions = [], None
        for k, cont in enumerate(self.target.continuations):
            want = output_attentions and k == 0
            keep = len(cont) + 1  # the last prompt position and the continuation's: all the score reads
            out = self.lm.forward(inputs_embeds=self.full_embeds(source, cont), output_attentions=want,
                                  logits_to_keep=keep)
            logits.append(out.logits[:, -keep:])
            if want:
                attentions = out.attentions
        return self.target.score(logits), attentions
