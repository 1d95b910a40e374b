"""Sampling settings applied identically to draft and target: temperature, then top-k, then top-p.

Speculative decoding is lossless with respect to the distribution the target would sample from, so the verifier
must compare the PROCESSED target distribution with the PROCESSED draft distribution it actually drew from.
Both sides call `probs_from_logits` with the same `SamplingConfig`; nothing else turns logits into probabilities.
The filtering itself is `workbench.models.sampling.next_token_probs` (what `LM.generate` samples from), in float64.

- temperature 0 means greedy: a one-hot on the argmax of the logits (the first index on ties, as torch.argmax),
  so that greedy speculative decoding reproduces greedy autoregressive decoding token for token;
- top-k keeps the k largest logits (ties at the k-th value are all kept);
- top-p (nucleus sampling; Holtzman et al., "The Curious Case of Neural Text Degeneration", 2020) keeps the
  smallest set of most probable tokens whose mass reaches top_p: a token is kept iff the mass of the tokens
  ranked strictly before it is < top_p. Then renormalises.
Probabilities are computed in float64 so that verification arithmetic is exact to ~1e-15.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from workbench.models.sampling import check_sampling, next_token_probs


@dataclass(frozen=True)
class SamplingConfig:
    """temperature (0 = greedy), top_k (None = off), top_p (None = off); validated on construction."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return probs_from_logits(logits, self.temperature, self.top_k, self.top_p)

    def to_dict(self) -> dict:
        return asdict(self)


def probs_from_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None) -> torch.Tensor:
    """The sampling distribution [..., V] (float64) for logits [..., V] under the given settings."""
    check_sampling(temperature, top_k, top_p)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim < 1:
        raise ValueError("logits must be a floating-point torch.Tensor of shape [..., V]")
    return next_token_probs(logits, temperature, top_k, top_p, dtype=torch.float64)


def sample_token(probs: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """One token drawn from probs [V] (weights need not be normalised)."""
    if probs.ndim != 1:
        raise ValueError(f"probs must be one-dimensional [V], got shape {tuple(probs.shape)}")
    return int(torch.multinomial(probs.to(torch.float64), 1, generator=generator).item())
