"""Gumbel-top-k: k distinct tokens drawn from q without replacement in one shot (Kool, van Hoof & Welling,
"Stochastic Beams and Where to Find Them: The Gumbel-Top-k Trick for Sampling Sequences Without Replacement",
2019), the sibling sampler of Recursive Speculative Decoding (Jeon et al., 2024).

Perturb log q(x) with i.i.d. Gumbel(0, 1) noise and take the k largest keys, in decreasing order: the result is
distributed exactly as k sequential draws without replacement (draw from q, remove the token, renormalise, draw
again), which is the order the 'rsd' verifier tries the siblings in.
"""
from __future__ import annotations

import torch


def gumbel_top_k(probs: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices [..., k'] of k' = min(k, smallest support) distinct tokens per row of probs [..., V], in draw order."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point() or probs.ndim < 1:
        raise ValueError("probs must be a floating-point torch.Tensor of shape [..., V]")
    probs = probs.to(torch.float64)
    if bool((probs < 0).any()) or not bool(torch.isfinite(probs).all()):
        raise ValueError("probs must be finite and >= 0")
    support = int((probs > 0).sum(-1).min())
    if support == 0:
        raise ValueError("every row of probs needs at least one token with probability > 0")
    device = generator.device if generator is not None else probs.device
    u = torch.rand(probs.shape, generator=generator, dtype=torch.float64, device=device).to(probs.device)
    u = u.clamp_min(torch.finfo(torch.float64).tiny)
    keys = torch.where(probs > 0, probs.log() - (-u.log()).log(), float("-inf"))
    return torch.topk(keys, min(k, support), dim=-1).indices
