"""Speculative sampling on a chain (Leviathan, Kalman & Matias, "Fast Inference from Transformers via Speculative
Decoding", 2023; Chen et al., "Accelerating Large Language Model Decoding with Speculative Sampling", 2023).

Draft token x ~ q is accepted with probability min(1, p(x) / q(x)); on rejection the step emits a token from the
residual norm(max(0, p - q)) and stops; after a fully accepted chain the bonus token is drawn from p at the leaf.
Then P(emit y) = min(p(y), q(y)) + (1 - sum_x min(p, q)) * norm(max(0, p - q))(y) = p(y) exactly.

With CUDA probabilities (and CuPy), `verify` decides every level of the chain at once with the batched
`workbench.kernels.rejection_sampling` op: row i accepts or resamples at node i's parent context with its own
two uniforms, the last row draws the bonus token from p, and the step stops at the first rejected row. Each
row's decision depends only on its own uniforms, so the emitted tokens have the same law as the level-by-level
walk (the random stream is consumed differently: 2 (n + 1) uniforms up front). `batched` forces the choice
(True/False); None picks the batched op exactly for CUDA tensors with CuPy and a torch.Generator (or None).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..rng import RandomSource
from ..tree import DraftTree
from .base import Verifier, VerifyResult
from .registry import register_verifier


@register_verifier
@dataclass
class SpeculativeSamplingVerifier(Verifier):
    name = "speculative_sampling"
    needs_draft_probs = True
    batched: bool | None = None

    def verify(self, tree: DraftTree, target_probs: torch.Tensor, draft_probs: torch.Tensor | None = None,
               generator: torch.Generator | RandomSource | None = None) -> VerifyResult:
        batched = self.batched
        if batched is None:
            from workbench.kernels import cupy_available

            batched = (isinstance(target_probs, torch.Tensor) and target_probs.is_cuda and cupy_available()
                       and (generator is None or isinstance(generator, torch.Generator)))
        if not batched:
            return super().verify(tree, target_probs, draft_probs, generator)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError("the batched speculative_sampling verifier draws its uniforms from a torch.Generator "
                             f"(or None), got {type(generator).__name__}; use batched=False to enumerate")
        self.check_inputs(tree, target_probs, draft_probs)
        device = generator.device if generator is not None else torch.device("cpu")
        uniforms = torch.rand(2, len(tree) + 1, generator=generator, dtype=torch.float64, device=device)
        return self.verify_uniforms(tree, target_probs, draft_probs, uniforms[0], uniforms[1])

    def verify_uniforms(self, tree: DraftTree, target_probs: torch.Tensor, draft_probs: torch.Tensor | None,
                        u_accept: torch.Tensor, u_sample: torch.Tensor) -> VerifyResult:
        """The batched step with given uniforms [n + 1] (row i: node i, row n: the bonus); inputs already checked."""
        from workbench.kernels import rejection_sampling

        n = len(tree)
        p = target_probs.detach().to(torch.float64)
        p = p / p.sum(-1, keepdim=True)
        source = draft_probs if draft_probs is not None else tree.draft_probs
        q = p[:n] if source is None else source.detach().to(p.device, torch.float64)
        q = torch.cat([q / q.sum(-1, keepdim=True), p[n:]])  # the bonus row's q is never read
        draft = torch.cat([tree.tokens, torch.tensor([-1])]).to(p.device)
        accepted, token = rejection_sampling(p, q, draft, u_accept.to(p.device), u_sample.to(p.device),
                                             check_values=False)
        kept = accepted.cpu().tolist()
        k = kept.index(False)  # the bonus row is never accepted
        return VerifyResult(list(range(k)), tree.tokens[:k].tolist(), int(token[k]))

    def check_tree(self, tree: DraftTree) -> None:
        for node in [-1] + list(range(len(tree))):
            if len(tree.children(node)) > 1:
                raise ValueError(f"verifier 'speculative_sampling' verifies a single chain, but node {node} has "
                                 f"{len(tree.children(node))} children; use 'rsd' (siblings drafted without "
                                 "replacement) or 'spectr' (i.i.d. drafts) for trees")

    def select(self, p: torch.Tensor, q: torch.Tensor | None, candidates: list[int],
               rng: RandomSource) -> tuple[int | None, int]:
        if not candidates:
            return None, rng.categorical(p)
        x = candidates[0]
        if rng.bernoulli(float(p[x] / q[x])):
            return 0, x
        residual = (p - q).clamp_min(0)
        return None, rng.categorical(residual if float(residual.sum()) > 0 else p)
