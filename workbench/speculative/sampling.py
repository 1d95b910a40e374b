"""Sampling settings applied identically to draft and target: temperature, then top-k, then top-p.

Speculative decoding is lossless with respect to the distribution the target would sample from, so the verifier
must compare the PROCESSED target distribution with the PROCESSED draft distribution it actually drew from.
Both sides call `probs_from_logits` with the same `SamplingConfig`; nothing else turns logits into probabilities.

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


def check_sampling(temperature: float, top_k: int | None = None, top_p: float | None = None) -> None:
    """Raise ValueError naming the parameter unless temperature >= 0, top_k >= 1 (or None), 0 < top_p <= 1."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if temperature == float("inf"):
        raise ValueError("temperature must be finite, got inf")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


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
    logits = logits.to(torch.float64)
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(torch.float64)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        drop = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, mass_before >= top_p)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def sample_token(probs: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """One token drawn from probs [V] (weights need not be normalised)."""
    if probs.ndim != 1:
        raise ValueError(f"probs must be one-dimensional [V], got shape {tuple(probs.shape)}")
    return int(torch.multinomial(probs.to(torch.float64), 1, generator=generator).item())
