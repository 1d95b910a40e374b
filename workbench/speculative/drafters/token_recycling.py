"""Token Recycling: draft from the target's own past top-k predictions (Luo et al., "Turning Trash into Treasure:
Accelerating Inference of Large Language Models with Token Recycling", 2024).

An adjacency matrix M [V, k] holds, for every token t, the k most likely successors of t the last time the
target scored a position holding t. After every verification, each position of the verified tree (the root and
every node, accepted or not) refreshes its token's row from the target logits there: M[t_i] = topk(logits[i]),
rows in feeding order, so a token repeated in the tree keeps its last row. Rows never scored are empty (-1) and
draft nothing. The matrix persists across generations (as in the paper) unless `reset_each_generation`.

Drafting is a breadth-first walk of a static tree template starting at the last token: the template is a list
of rank paths (r_1, ..., r_d); node (r_1..r_d) holds token M[token of (r_1..r_{d-1})][r_d], the root being the
last context token. A node whose row is empty is dropped with its subtree. The default template is a documented
23-node shape of depth 6 (smaller than the paper's 80-node one, sized for CPU): wide near the root, a long spine
on the top-ranked successors.

Deterministic: given the context (and the history of verified positions it summarises) the tree is fixed, so it
pairs with 'greedy' (temperature 0) and 'deterministic_tree' (sampling).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..sampling import SamplingConfig
from ..tree import DraftTree
from .base import Drafter, check_budget
from .registry import register_drafter

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from ..verifiers import VerifyResult

DEFAULT_TEMPLATE: tuple[tuple[int, ...], ...] = (
    (0,), (1,), (2,), (3,),
    (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0), (3, 0),
    (0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0), (2, 0, 0),
    (0, 0, 0, 0), (0, 0, 0, 1), (0, 1, 0, 0), (1, 0, 0, 0),
    (0, 0, 0, 0, 0), (1, 0, 0, 0, 0),
    (0, 0, 0, 0, 0, 0),
)


def check_template(template: Sequence[Sequence[int]], k: int) -> tuple[tuple[int, ...], ...]:
    """Validate a template (non-empty rank paths, ranks in [0, k), each path's parent listed before it, no
    duplicates); returns it as tuples."""
    if isinstance(template, (str, bytes)) or not isinstance(template, Sequence) or not template:
        raise ValueError("template must be a non-empty sequence of rank paths such as [(0,), (1,), (0, 0)]")
    seen: set[tuple[int, ...]] = set()
    out = []
    for i, path in enumerate(template):
        try:
            path = tuple(path)
        except TypeError:
            raise ValueError(f"template[{i}] must be a sequence of ranks, got {path!r}") from None
        if not path or any(isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < k for r in path):
            raise ValueError(f"template[{i}] = {path!r}: ranks must be ints in [0, k) = [0, {k})")
        if path in seen:
            raise ValueError(f"template[{i}] = {path!r} is listed twice")
        if len(path) > 1 and path[:-1] not in seen:
            raise ValueError(f"template[{i}] = {path!r}: its parent {path[:-1]!r} must be listed before it")
        seen.add(path)
        out.append(path)
    return tuple(out)


@register_drafter
@dataclass
class TokenRecyclingDrafter(Drafter):
    name = "token_recycling"
    deterministic = True

    k: int = 8
    template: Sequence[Sequence[int]] = DEFAULT_TEMPLATE
    reset_each_generation: bool = False
    matrix: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an int >= 1 (successors kept per token), got {self.k!r}")
        self.template = check_template(self.template, self.k)
        self._root: int | None = None

    def begin(self, lm: LM | None, prompt_ids: Sequence[int], sampling: SamplingConfig,
              generator: torch.Generator | None = None) -> None:
        if lm is None:
            raise ValueError("token_recycling needs the target LM in begin() (its vocabulary size)")
        vocab = int(lm.vocab_size)
        if self.matrix is None or self.reset_each_generation or self.matrix.shape[0] != vocab:
            self.matrix = torch.full((vocab, self.k), -1, dtype=torch.long)

    def propose(self, context_ids: Sequence[int], budget: int) -> DraftTree:
        check_budget(budget)
        if self.matrix is None:
            raise RuntimeError("call begin(lm, prompt_ids, sampling, generator) before propose()")
        self._root = int(context_ids[-1])
        node_of: dict[tuple[int, ...], int] = {(): -1}
        token_of: dict[int, int] = {-1: self._root}
        tokens: list[int] = []
        parents: list[int] = []
        for path in self.template:
            if len(tokens) == budget:
                break
            parent = node_of.get(path[:-1])
            if parent is None:
                continue  # an ancestor was dropped
            token = int(self.matrix[token_of[parent], path[-1]])
            if token < 0:
                continue
            node_of[path] = len(tokens)
            token_of[len(tokens)] = token
            tokens.append(token)
            parents.append(parent)
        return DraftTree(tokens, parents)

    def update(self, tree: DraftTree, result: VerifyResult, logits: torch.Tensor) -> None:
        if self.matrix is None or self._root is None:
            return
        ids = [self._root] + tree.tokens.tolist()
        if logits.ndim != 2 or logits.shape[0] != len(ids):
            raise ValueError(f"logits must have shape [n + 1, V] = [{len(ids)}, V], got {tuple(logits.shape)}")
        top = torch.topk(logits.detach().float().cpu(), min(self.k, logits.shape[-1]), dim=-1).indices
        for token, row in zip(ids, top):
            self.matrix[token, : row.shape[0]] = row
