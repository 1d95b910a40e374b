"""Result values of the model layer: one forward pass, one generation."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models.cache import KVCache


@dataclass
class ForwardOutput:
    """What `LM.forward` returns.

    logits:        [B, T, V] next-token logits for each fed position (from `exit_layer` when one was asked for).
    cache:         the KV cache after this call (the one passed in, extended in place, or a new one).
    attentions:    per layer [B, H, T, S] attention probabilities when `output_attentions=True`, else None.
    hidden_states: when `output_hidden_states=True`, num_layers + 1 tensors [B, T, hidden]: the input of layer 0
                   (the embeddings) and the output of every layer, all *before* the final norm; else None.
    """

    logits: torch.Tensor
    cache: KVCache
    attentions: tuple[torch.Tensor, ...] | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class Generation:
    """What `LM.generate` returns.

    new_ids holds every generated token, including a final end-of-sequence token when one stopped the run;
    `text` is the decoded continuation without that token and cut before a matched stop string.
    `seconds` covers prefill and decoding; `prefill_seconds` the prompt's forward alone.
    stop_reason: "eos", "stop" (a stop string), "length" (max_new_tokens) or "context" (context window full).
    """

    prompt_ids: list[int]
    new_ids: list[int]
    text: str
    seconds: float
    tokens_per_second: float
    forward_calls: int
    prefill_seconds: float = 0.0
    stop_reason: str = "length"
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of every field."""
        return {
            "prompt_ids": list(self.prompt_ids),
            "new_ids": list(self.new_ids),
            "text": self.text,
            "seconds": float(self.seconds),
            "tokens_per_second": float(self.tokens_per_second),
            "forward_calls": int(self.forward_calls),
            "prefill_seconds": float(self.prefill_seconds),
            "stop_reason": self.stop_reason,
            "settings": dict(self.settings),
        }

    def __repr__(self) -> str:
        return (
            f"Generation({len(self.new_ids)} new tokens after {len(self.prompt_ids)} prompt tokens, "
            f"{self.tokens_per_second:.1f} tok/s, {self.forward_calls} forward calls, stop={self.stop_reason}): "
            f"{self.text!r}"
        )

    def _repr_html_(self) -> str:
        return (
            f"<div><b>Generation</b> &middot; {len(self.new_ids)} new tokens &middot; "
            f"{self.tokens_per_second:.1f} tok/s &middot; {self.forward_calls} forward calls &middot; "
            f"stop: {html.escape(self.stop_reason)}<pre style='white-space:pre-wrap'>"
            f"{html.escape(self.text)}</pre></div>"
        )
