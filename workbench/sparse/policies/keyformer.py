"""Keyformer: key tokens by a Gumbel-regularised, temperature-annealed softmax score + a recent window.

Paper: "Keyformer: KV Cache Reduction through Key Tokens Selection for Efficient Generative Inference"
(Adnan et al., 2024). Like H2O it keeps a recent window plus the tokens with the largest accumulated score and
evicts the rest, but the score is softmax((logits + Gumbel noise) / tau) instead of the plain attention, which
stops a few early tokens from winning only because they were scored more often; tau rises linearly from
tau_init to tau_end over the decode steps.

Here the logits of the tokens actually read are recovered from the probabilities the step used (log p differs
from the logits by a per-row constant, which the softmax cancels), so the score covers the same tokens as the
attention did. The noise comes from a generator seeded per (seed, layer), so runs repeat exactly.
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
        gumbel = -torch.log(-torch.log(u))
        logp = torch.where(probs > 0, probs.float().log(), torch.full_like(probs, float("-inf"), dtype=torch.float32))
        return torch.softmax((logp + gumbel) / tau, dim=-1).nan_to_num_(0.0)  # all-zero rows add nothing
