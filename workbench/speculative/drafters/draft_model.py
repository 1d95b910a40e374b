"""A small draft model proposes the drafts (Leviathan et al., "Fast Inference from Transformers via Speculative
Decoding", 2023; Chen et al., "Accelerating Large Language Model Decoding with Speculative Sampling", 2023).

Modes (every level of a tree is one draft forward pass with tree attention, see draft_state.py):
- "chain": k tokens, each the argmax (temperature 0) or a draw from the draft distribution processed with the
  SAME temperature / top-k / top-p as the target; draft_probs attached -> verify with 'speculative_sampling'
  (or 'greedy' at temperature 0).
- "tree": top-k expansion: every node at depth d gets the branching[d - 1] most likely draft tokens (raw draft
  logits, ties to the lower id) as children; deterministic, no draft_probs -> 'greedy' or 'deterministic_tree'.
- "gumbel": as in Recursive Speculative Decoding with a constant branching tree (RSD-C; Jeon et al., "Recursive
  Speculative Decoding: Accelerating LLM Inference via Sampling Without Replacement", 2024): the children of a
  node are branching[d - 1] tokens drawn WITHOUT replacement from the processed draft distribution by Gumbel-top-k,
  in draw order; draft_probs attached -> verify with 'rsd'.
Levels are filled breadth-first in node order until `budget` nodes; depth is at most k.

`draft` is an LM or an asset name / model folder (loaded on first use, fp32, on the target's device). The
vocabulary check of `begin` raises VocabularyMismatchError (a ValueError) naming both tokenizers.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..sampling import SamplingConfig
from ..tree import DraftTree
from .base import Drafter, check_budget
from .draft_state import DraftState
from .gumbel import gumbel_top_k
from .registry import register_drafter

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from ..verifiers import VerifyResult

MODES = ("chain", "tree", "gumbel")


def check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def load_draft(draft: Any, target: LM) -> LM:
    """An LM for `draft` (an LM is returned as is; a name or folder is loaded on the target's device)."""
    from workbench.models import LM

    if isinstance(draft, LM):
        return draft
    if not isinstance(draft, str) or not draft:
        raise ValueError(f"draft must be an LM or a model name / folder, got {draft!r}")
    return LM.load(draft, device=str(target.device))


@register_drafter
@dataclass
class DraftModelDrafter(Drafter):
    name = "draft_model"

    draft: Any = "qwen2.5-coder-0.5b"
    mode: str = "chain"
    k: int = 5
    branching: Sequence[int] = (2, 2, 1)
    state: DraftState | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        check_positive_int(self.k, "k")
        if isinstance(self.branching, (str, bytes)) or not isinstance(self.branching, Sequence) or not self.branching:
            raise ValueError(f"branching must be a non-empty sequence of ints >= 1 (children per level), got {self.branching!r}")
        for i, b in enumerate(self.branching):
            check_positive_int(b, f"branching[{i}]")
        self.branching = tuple(self.branching)
        self._loaded: LM | None = None
        self.sampling = SamplingConfig(0.0)
        self.generator: torch.Generator | None = None

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return self.mode == "tree"

    def begin(self, lm: LM | None, prompt_ids: Sequence[int], sampling: SamplingConfig,
              generator: torch.Generator | None = None) -> None:
        if lm is None:
            raise ValueError("draft_model needs the target LM in begin() (to check the vocabularies)")
        if self._loaded is None or (not isinstance(self.draft, str) and self._loaded is not self.draft):
            self._loaded = load_draft(self.draft, lm)
        self.state = DraftState(self._loaded, lm)
        self.sampling = sampling
        self.generator = generator

    def _children(self, logits: torch.Tensor, probs: torch.Tensor, width: int) -> list[int]:
        if self.mode == "tree":
            return torch.topk(logits, min(width, int(torch.isfinite(logits).sum())), dim=-1).indices.tolist()
        if self.mode == "gumbel":
            return gumbel_top_k(probs, width, self.generator).tolist()
        if self.sampling.greedy:
            return [int(probs.argmax())]
        return [int(torch.multinomial(probs, 1, generator=self.generator).item())]

    def _width(self, depth: int) -> int:
        if self.mode == "chain":
            return 1
        return self.branching[min(depth, len(self.branching) - 1)]

    def propose(self, context_ids: Sequence[int], budget: int) -> DraftTree:
        check_budget(budget)
        if self.state is None:
            raise RuntimeError("call begin(lm, prompt_ids, sampling, generator) before propose()")
        state = self.state
        frontier = [(-1, state.root_logits(context_ids))]  # (node, draft logits after it)
        rows: list[torch.Tensor] = []
        count = 0
        for depth in range(self.k):
            level: list[int] = []
            for parent, logits in frontier:
                probs = self.sampling.probs(logits)
                for token in self._children(logits, probs, self._width(depth)):
                    if count == budget:
                        break
                    level.append(state.add_node(token, parent))
                    rows.append(probs)
                    count += 1
            if not level or count == budget or depth == self.k - 1:
                break
            frontier = list(zip(level, state.feed(level)))
        if self.mode == "tree":
            return state.tree()
        return state.tree(torch.stack(rows) if rows else None)

    def update(self, tree: DraftTree, result: VerifyResult, logits: torch.Tensor) -> None:
        if self.state is not None:
            self.state.commit(tree, result)
