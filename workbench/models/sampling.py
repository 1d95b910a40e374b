"""Next-token distributions and sampling: temperature, top-k, top-p (nucleus; Holtzman et al. 2020).

`next_token_probs` gives the exact distribution a sampler draws from (speculative verifiers need it, not just
a sample); `sample` draws from it with a seeded torch.Generator; temperature 0 means greedy (argmax).
"""
from __future__ import annotations

import torch


def check_sampling(temperature: float, top_k: int | None = None, top_p: float | None = None) -> None:
    """Raise ValueError naming the parameter unless 0 <= temperature < inf, top_k >= 1 (or None), 0 < top_p <= 1."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if temperature == float("inf"):
        raise ValueError("temperature must be finite, got inf")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Probabilities [..., V] (in `dtype`) after temperature, then top-k, then top-p filtering.

    temperature 0 gives a one-hot on the argmax (the first one on ties). top-k keeps the k largest logits
    (and any tied with the k-th). top-p keeps the smallest set of most
    probable tokens whose mass reaches top_p (the token crossing the threshold included; among equal
    probabilities the lower id first), then renormalizes.
    """
    check_sampling(temperature, top_k, top_p)
    logits = logits.to(dtype)
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(dtype)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        drop_sorted = mass_before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row of probs [..., V] -> token ids [...] (long)."""
    flat = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
    return ids.reshape(probs.shape[:-1])


def pick_token(logits: torch.Tensor, temperature: float, top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None) -> int:
    """The next token from last-position logits [V]: argmax at temperature 0, else one draw from the
    temperature / top-k / top-p distribution (the rule of every autoregressive decode loop)."""
    if temperature == 0:
        return int(logits.argmax())
    return int(sample(next_token_probs(logits, temperature, top_k, top_p), generator))


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device`, seeded with `seed` (a fresh random seed when None)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be None or an int, got {seed!r}")
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
