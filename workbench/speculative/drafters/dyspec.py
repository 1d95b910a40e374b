"""DySpec: a draft tree grown greedily by draft probability (Xiong et al., "DySpec: Faster Speculative Decoding
with Dynamic Token Tree Structure", 2024).

The value of a node is the product of the draft probabilities along its path (the draft's estimate that the
target accepts it). Candidates live in one max-heap: every expanded node offers its children in order of
probability; the best candidate anywhere in the tree becomes the next node, until `budget` nodes. A node's
children are only computed (one draft forward pass, tree attention) when the node's own value reaches the top
of the heap: all its children are worth at most that much, so the nodes come out in exactly decreasing value
order (ties: earlier candidates first) with no draft pass spent on nodes that never get children.

Path probabilities use the draft's softmax at `draft_temperature` (default 1); children are the most likely
tokens. The tree is a function of the context only: verify with 'greedy' (temperature 0) or
'deterministic_tree' (sampling), both lossless for it.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..sampling import SamplingConfig
from ..tree import DraftTree
from .base import Drafter, check_budget
from .draft_model import load_draft
from .draft_state import DraftState
from .registry import register_drafter

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from ..verifiers import VerifyResult


@dataclass
class GrownTree:
    """What `grow_tree` returns: per node (in the order added) token, parent, value; and the expanded nodes."""

    tokens: list[int]
    parents: list[int]
    values: list[float]
    expanded: list[int]


def _ranked(probs: torch.Tensor, limit: int) -> tuple[list[float], list[int]]:
    count = min(limit, int((probs > 0).sum()))
    top = torch.topk(probs, count)
    return top.values.tolist(), top.indices.tolist()


def grow_tree(root_probs: torch.Tensor, child_probs: Callable[[int], torch.Tensor], budget: int,
              add_node: Callable[[int, int], int] | None = None) -> GrownTree:
    """Greedy best-first growth (see the module docstring).

    root_probs [V]: draft distribution after the context; child_probs(node) -> [V] after that node (called when
    the node is expanded, after every node on its path was added); add_node(token, parent) -> node index is
    called as nodes are added (default: numbering in order).
    """
    check_budget(budget)
    out = GrownTree([], [], [], [])
    ranked: dict[int, tuple[list[float], list[int]]] = {-1: _ranked(root_probs.to(torch.float64), budget)}
    heap: list[tuple[float, int, int, int]] = []  # (-value, order, node or parent, rank); rank -1 = expansion
    order = 0

    def offer(parent: int, rank: int, parent_value: float) -> None:
        nonlocal order
        probs, _ = ranked[parent]
        if rank < len(probs):
            heapq.heappush(heap, (-parent_value * probs[rank], order, parent, rank))
            order += 1

    offer(-1, 0, 1.0)
    while heap and len(out.tokens) < budget:
        neg, _, ref, rank = heapq.heappop(heap)
        value = -neg
        if rank < 0:  # expand node `ref`: its children become candidates
            out.expanded.append(ref)
            ranked[ref] = _ranked(child_probs(ref).to(torch.float64), budget - len(out.tokens))
            offer(ref, 0, value)
            continue
        parent, token = ref, ranked[ref][1][rank]
        node = add_node(token, parent) if add_node is not None else len(out.tokens)
        out.tokens.append(token)
        out.parents.append(parent)
        out.values.append(value)
        parent_value = 1.0 if parent < 0 else out.values[parent]
        offer(parent, rank + 1, parent_value)
        heapq.heappush(heap, (-value, order, node, -1))
        order += 1
    return out


@register_drafter
@dataclass
class DySpecDrafter(Drafter):
    name = "dyspec"
    deterministic = True

    draft: Any = "qwen2.5-coder-0.5b"
    draft_temperature: float = 1.0

    def __post_init__(self) -> None:
        t = self.draft_temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < float("inf"):
            raise ValueError(f"draft_temperature must be a number > 0, got {t!r}")
        self._loaded: LM | None = None
        self.state: DraftState | None = None

    def begin(self, lm: LM | None, prompt_ids: Sequence[int], sampling: SamplingConfig,
              generator: torch.Generator | None = None) -> None:
        if lm is None:
            raise ValueError("dyspec needs the target LM in begin() (to check the vocabularies)")
        if self._loaded is None or (not isinstance(self.draft, str) and self._loaded is not self.draft):
            self._loaded = load_draft(self.draft, lm)
        self.state = DraftState(self._loaded, lm)

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.to(torch.float64) / self.draft_temperature, dim=-1)

    def propose(self, context_ids: Sequence[int], budget: int) -> DraftTree:
        check_budget(budget)
        if self.state is None:
            raise RuntimeError("call begin(lm, prompt_ids, sampling, generator) before propose()")
        state = self.state
        root = self._probs(state.root_logits(context_ids))
        grow_tree(root, lambda node: self._probs(state.feed([node])[0]), budget, state.add_node)
        return state.tree()

    def update(self, tree: DraftTree, result: VerifyResult, logits: torch.Tensor) -> None:
        if self.state is not None:
            self.state.commit(tree, result)
