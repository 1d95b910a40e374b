"""Keyformer: key tokens by a Gumbel-regularised, temperature-annealed softmax score + a recent window.

Paper: "Keyformer: KV Cache Reduction through Key Tokens Selection for Efficient Generative Inference"
(Adnan et al., 2024). Like H2O it keeps a recent window plus the tokens with the largest accumulated score and
evicts the rest, but the score is softmax((logits + Gumbel noise) / tau) instead of the plain attention, which
stops a few early tokens from winning only because they were scored more often; tau rises linearly from
tau_init to tau_end over the decode steps.

Here the logits of the tokens actually read are recovered from the probabilities the step used (log p differs
from the logits by a per-row constant, which the softmax cancels), so the score covers the same tokens as the
attention did. The noise comes from a generator seeded per (seed, layer) (`seed * 1_000_003 + layer_idx`),
drawn call after call for the shape of the probabilities observed (the prefill's row chunks in order, then one
row per decode step), so a run repeats exactly given the same chunking. The score is computed as
(p / E) ** (1 / tau) normalised, E = -log u, which equals the Gumbel softmax without its logs and exponentials
(`gumbel_softmax_of_probs`).
Simplification: tau anneals over `tau_steps` decode steps (the paper anneals over the generation length).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.sparse.policies.h2o import H2O
from workbench.sparse.registry import register_selector
from workbench.sparse.selector import LayerState


@register_selector("keyformer")
@dataclass
class Keyformer(H2O):
    """H2O-style eviction ranked by accumulated Gumbel-softmax scores."""

    recent_fraction: float = 0.3
    tau_init: float = 1.0
    tau_end: float = 2.0
    tau_steps: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.tau_init > 0 and self.tau_end > 0):
            raise ValueError(f"tau_init and tau_end must be > 0, got {self.tau_init}, {self.tau_end}")
        if isinstance(self.tau_steps, bool) or not isinstance(self.tau_steps, int) or self.tau_steps < 1:
            raise ValueError(f"tau_steps must be an int >= 1, got {self.tau_steps!r}")

    def token_scores(self, state: LayerState, probs: Tensor) -> Tensor:
        steps = state.memory.get(self._key("steps"), 0)
        gen = state.memory.get(self._key("generator"))
        if gen is None:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + state.layer_idx)
            state.memory[self._key("generator")] = gen
        tau = self.tau_init + (self.tau_end - self.tau_init) * min(steps / self.tau_steps, 1.0)
        state.memory[self._key("steps")] = steps + (1 if probs.shape[2] == 1 else 0)
        u = torch.rand(probs.shape, generator=gen).clamp_(1e-20, 1 - 1e-7).to(probs.device)
        return gumbel_softmax_of_probs(probs, u, tau)


def gumbel_softmax_of_probs(probs: Tensor, u: Tensor, tau: float) -> Tensor:
    """softmax((log probs + g) / tau) over the last dim with Gumbel noise g = -log(-log u); rows of zeros -> 0.

    Computed without logs of the probabilities or exponentials: with E = -log u (so g = -log E),
    exp((log p + g) / tau) = (p / E) ** (1 / tau), normalised per row (divided by the row max first when
    tau != 1 so the power cannot overflow). Zero probabilities (tokens not read) score exactly 0, as -inf logits
    do in the softmax. `gumbel_softmax_reference` is the direct formula."""
    ratio = probs.float() / u.log().neg_()
    if tau != 1:
        ratio.div_(ratio.amax(-1, keepdim=True)).pow_(1.0 / tau)
    return ratio.div_(ratio.sum(-1, keepdim=True)).nan_to_num_(0.0)


def gumbel_softmax_reference(probs: Tensor, u: Tensor, tau: float) -> Tensor:
    """The direct formula of `gumbel_softmax_of_probs`: softmax((log p - log(-log u)) / tau), -inf where p = 0."""
    gumbel = -torch.log(-torch.log(u))
    logp = torch.where(probs > 0, probs.float().log(), torch.full_like(probs, float("-inf"), dtype=torch.float32))
    return torch.softmax((logp + gumbel) / tau, dim=-1).nan_to_num_(0.0)
