"""The Verifier interface: walk down a draft tree, accepting one child per level, and emit a bonus token.

Every verifier here is a walk (the same loop for all of them) plus a one-level rule `select`:

    at the current node, with target distribution p at its context, draft distribution q (or none) and the
    candidate child tokens x_1..x_k in tree order: either accept one candidate (the walk moves to it) or emit
    a token y drawn by the rule and stop. With no candidates (a leaf) the rule draws the bonus token from p.

Losslessness of a verifier is losslessness of its rule: whatever the drafting scheme the rule assumes, the token
it accepts-or-emits must be distributed exactly as p; the walk then continues in the accepted child, whose own
candidates were drafted at that child's context independently of the choices made above.

Nodes whose root-to-node token paths are identical (duplicates, as in SpecTr's k independent sequences) form
one "frontier": the candidates at the next level are the children of all of them, in node order.

Inputs: target_probs [n + 1, V]: row 0 the target distribution at the root context, row i + 1 the distribution
after node i (the context root..i); draft_probs [n, V]: per node the draft distribution at its parent context
(defaults to tree.draft_probs). Both are probabilities after the same temperature/top-k/top-p processing
(`workbench.speculative.sampling`); they are checked, then used in float64.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..errors import SpeculativeTypeError
from ..rng import RandomSource, as_random_source, enumerate_outcomes
from ..tree import DraftTree

_SUM_TOLERANCE = 1e-3  # rows must sum to 1 within this (float32 softmax rows do, logits do not)


@dataclass
class VerifyResult:
    """What one verification step emits: the accepted path (node indices and tokens) and the bonus token."""

    accepted_nodes: list[int]
    accepted_tokens: list[int]
    bonus_token: int

    @property
    def tokens(self) -> list[int]:
        """Every emitted token: the accepted ones, then the bonus token."""
        return self.accepted_tokens + [self.bonus_token]

    @property
    def num_accepted(self) -> int:
        return len(self.accepted_nodes)

    def to_dict(self) -> dict:
        return {"accepted_nodes": list(self.accepted_nodes), "accepted_tokens": list(self.accepted_tokens),
                "bonus_token": int(self.bonus_token)}


def _check_probs(probs: torch.Tensor, name: str, rows: int, what: str) -> torch.Tensor:
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch.Tensor of shape [{what}, V]")
    if probs.ndim != 2 or probs.shape[0] != rows:
        raise ValueError(f"{name} must have shape [{what}, V] = [{rows}, V], got {tuple(probs.shape)}")
    if probs.shape[1] == 0:
        raise ValueError(f"{name} has an empty vocabulary (V = 0)")
    probs = probs.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(probs).all()) or bool((probs < 0).any()):
        raise ValueError(f"{name} must hold probabilities (finite, >= 0), not logits")
    sums = probs.sum(-1)
    if rows and float((sums - 1).abs().max()) > _SUM_TOLERANCE:
        bad = int((sums - 1).abs().argmax())
        raise ValueError(f"{name} rows must sum to 1 (probabilities, not logits); row {bad} sums to {float(sums[bad]):.6g}")
    return probs / sums[:, None] if rows else probs


@dataclass
class Verifier:
    """Base class: subclasses set `name`, `needs_draft_probs` and implement `select` (see the module docstring)."""

    name: ClassVar[str] = ""
    needs_draft_probs: ClassVar[bool] = False

    # ---- the one-level rule (subclasses) ---------------------------------------------------------------------
    def select(self, p: torch.Tensor, q: torch.Tensor | None, candidates: list[int],
               rng: RandomSource) -> tuple[int | None, int]:
        """(index of the accepted candidate, its token) or (None, the emitted token that ends the step)."""
        raise NotImplementedError

    def check_tree(self, tree: DraftTree) -> None:
        """Structural requirements of the rule (subclasses raise ValueError)."""

    # ---- the walk --------------------------------------------------------------------------------------------
    def check_inputs(self, tree: DraftTree, target_probs: torch.Tensor,
                     draft_probs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate everything before any work; return (target, draft) as normalised float64 tensors."""
        if not isinstance(tree, DraftTree):
            raise SpeculativeTypeError(f"tree must be a DraftTree, got {type(tree).__name__}")
        n = len(tree)
        target = _check_probs(target_probs, "target_probs", n + 1, "n + 1")
        vocab = target.shape[1]
        for i in range(n):
            if tree.token(i) >= vocab:
                raise ValueError(f"tree token {tree.token(i)} at node {i} is outside the target vocabulary of size {vocab}")
        draft = None
        if self.needs_draft_probs:
            source = draft_probs if draft_probs is not None else tree.draft_probs
            if source is None and n == 0:
                source = target.new_zeros((0, vocab))  # nothing drafted (e.g. the last step): nothing to check
            if source is None:
                raise ValueError(f"verifier {self.name!r} needs the draft distributions: pass draft_probs [n, V] "
                                 "or build the DraftTree with draft_probs")
            if isinstance(source, torch.Tensor) and source.ndim == 2 and source.shape[1] != vocab:
                raise ValueError(f"vocabulary mismatch: draft distributions have V = {source.shape[1]} but target "
                                 f"distributions have V = {vocab}; draft and target must share one vocabulary")
            draft = _check_probs(source, "draft_probs", n, "n")
            for parent in [-1] + list(range(n)):
                kids = tree.children(parent)
                for c in kids:
                    if draft[c, tree.token(c)] <= 0:
                        raise ValueError(f"node {c}: token {tree.token(c)} has draft probability 0, so it cannot have "
                                         "been drawn from draft_probs[node] (the draft distribution at its parent context)")
                    if not torch.allclose(draft[c], draft[kids[0]], rtol=0, atol=1e-6):
                        raise ValueError(f"siblings {kids[0]} and {c} have different draft distributions; draft_probs[i] "
                                         "must be the draft distribution at node i's parent context")
        self.check_tree(tree)
        return target, draft

    def verify(self, tree: DraftTree, target_probs: torch.Tensor, draft_probs: torch.Tensor | None = None,
               generator: torch.Generator | RandomSource | None = None) -> VerifyResult:
        """Verify `tree` against the target: the accepted path and the bonus token (see the module docstring)."""
        target, draft = self.check_inputs(tree, target_probs, draft_probs)
        return self._walk(tree, target, draft, as_random_source(generator))

    def _walk(self, tree: DraftTree, target: torch.Tensor, draft: torch.Tensor | None,
              rng: RandomSource) -> VerifyResult:
        frontier, last = [-1], -1
        while True:
            candidates = [c for f in frontier for c in tree.children(f)]
            q = draft[candidates[0]] if draft is not None and candidates else None
            choice, token = self.select(target[last + 1], q, [tree.token(c) for c in candidates], rng)
            if choice is None:
                path = tree.path(last)
                return VerifyResult(path, [tree.token(i) for i in path], int(token))
            last = candidates[choice]
            frontier = [c for c in candidates if tree.token(c) == token]

    # ---- exact analysis --------------------------------------------------------------------------------------
    def exact_outcomes(self, tree: DraftTree, target_probs: torch.Tensor,
                       draft_probs: torch.Tensor | None = None) -> list[tuple[float, VerifyResult]]:
        """Every possible result of `verify` on this draft with its exact probability (same code, enumerated)."""
        target, draft = self.check_inputs(tree, target_probs, draft_probs)
        return enumerate_outcomes(lambda rng: self._walk(tree, target, draft, rng))

    def output_distribution(self, tree: DraftTree, target_probs: torch.Tensor,
                            draft_probs: torch.Tensor | None = None) -> dict[tuple[int, ...], float]:
        """Exact probability of every emitted token sequence (accepted tokens + bonus) for this draft."""
        dist: dict[tuple[int, ...], float] = defaultdict(float)
        for prob, result in self.exact_outcomes(tree, target_probs, draft_probs):
            dist[tuple(result.tokens)] += prob
        return dict(dist)
