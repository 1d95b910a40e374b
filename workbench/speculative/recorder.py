"""DraftRecorder: wrap any drafter to keep every step's draft tree and what the verifier accepted from it.

`SpeculativeGeneration.steps` keeps per step only counts and the emitted tokens; the trees themselves are not
part of the result (they can be large). To look at them, draft through a recorder:

    recorder = DraftRecorder("prompt_lookup")
    gen = speculative_generate(lm, prompt, recorder)
    gen.view(drafts=recorder)          # the tree of every step, its accepted path highlighted

The recorder proposes exactly what the wrapped drafter proposes (same name, same `deterministic`), so the
generation is unchanged; `update` is called once per step, so `records[k]` belongs to `gen.steps[k]`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .drafters import Drafter, get_drafter
from .sampling import SamplingConfig
from .tree import DraftTree

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from .verifiers import VerifyResult


@dataclass
class DraftRecord:
    """One step: the draft tree (without draft distributions), the accepted node indices and the bonus token."""

    tree: DraftTree
    accepted_nodes: list[int]
    bonus_token: int

    def to_dict(self) -> dict[str, Any]:
        return {"tree": self.tree.to_dict(), "accepted_nodes": list(self.accepted_nodes),
                "bonus_token": int(self.bonus_token)}


class DraftRecorder(Drafter):
    """A drafter that delegates to `drafter` (a registered name, with `options`, or an instance) and records
    a `DraftRecord` per step in `records` (reset at every `begin`); `tokenizer` is the target's, for labels."""

    def __init__(self, drafter: str | Drafter = "prompt_lookup", **options: Any) -> None:
        self.inner = get_drafter(drafter, **options)
        self.records: list[DraftRecord] = []
        self.tokenizer: Any = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return self.inner.deterministic

    def begin(self, lm: LM | None, prompt_ids: Sequence[int], sampling: SamplingConfig,
              generator: torch.Generator | None = None) -> None:
        self.records = []
        self.tokenizer = getattr(lm, "tokenizer", None)
        self.inner.begin(lm, prompt_ids, sampling, generator)

    def propose(self, context_ids: Sequence[int], budget: int) -> DraftTree:
        return self.inner.propose(context_ids, budget)

    def update(self, tree: DraftTree, result: VerifyResult, logits: torch.Tensor) -> None:
        self.inner.update(tree, result, logits)
        self.records.append(DraftRecord(DraftTree(tree.tokens, tree.parents), list(result.accepted_nodes),
                                        int(result.bonus_token)))

    def __repr__(self) -> str:
        return f"DraftRecorder({self.inner!r}, {len(self.records)} steps recorded)"
