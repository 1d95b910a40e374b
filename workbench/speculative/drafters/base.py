"""The Drafter interface: propose a DraftTree within a node budget; learn from what the target verified.

    drafter.begin(lm, prompt_ids, sampling, generator)   # once per generation: reset state, bind the target
    tree = drafter.propose(context_ids, budget)          # context = prompt + tokens so far; at most `budget` nodes
    drafter.update(tree, result, logits)                 # after verification (logits: target logits [n + 1, V])
    drafter.draft_key(context_ids)                       # optional label of the next draft (cost-aware budget)

`deterministic` drafters (n-gram lookup, tries, greedy expansions) propose trees that are a function of the
context and carry no draft distributions: they pair with the 'greedy' and 'deterministic_tree' verifiers.
Drafters that sample attach draft_probs (processed with the same SamplingConfig as the target).
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from ..sampling import SamplingConfig
from ..tree import DraftTree

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from ..verifiers import VerifyResult


def check_budget(budget: int) -> None:
    """Raise ValueError unless budget is an int >= 1 (the most draft nodes one step may propose)."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be an int >= 1 (draft nodes per step), got {budget!r}")


@dataclass
class Drafter:
    """Base class: subclasses set `name`, `deterministic` and implement `propose`."""

    name: ClassVar[str] = ""
    deterministic: ClassVar[bool] = True

    def begin(self, lm: LM | None, prompt_ids: Sequence[int], sampling: SamplingConfig,
              generator: torch.Generator | None = None) -> None:
        """Called once before a generation starts (default: nothing to reset)."""

    def propose(self, context_ids: Sequence[int], budget: int) -> DraftTree:
        """A draft tree of at most `budget` nodes continuing `context_ids` (may be empty)."""
        raise NotImplementedError

    def draft_key(self, context_ids: Sequence[int]) -> Hashable:
        """A label of the draft `propose(context_ids, ...)` would make, for the cost-aware budget's acceptance
        statistics (speculative/acceptance.py): drafts with the same key should be accepted about as often.
        Default None: one pool for every draft."""
        return None

    def update(self, tree: DraftTree, result: VerifyResult, logits: torch.Tensor) -> None:
        """Called after every verification (default: stateless)."""
