"""What a speculative generation returns: the text, the cost, and how well the drafts were accepted.

Per step: nodes drafted, tree depth, tokens accepted, tokens emitted (accepted + the bonus token, before any cut
by EOS / stop / max length). Summaries:
- tau: mean tokens emitted per target forward step, counting the bonus token (1.0 = no gain);
- acceptance_rate: accepted tokens / drafted nodes (over steps that drafted anything);
- per_position_acceptance[d-1]: among steps whose tree reached depth d and whose first d-1 tokens were
  accepted, the fraction that accepted a token at depth d.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def self_repeat_fraction(ids: Sequence[int], n: int = 10) -> float:
    """Share of the tokens of `ids` that end an n-gram already seen earlier in `ids` (0.0 for fewer than n + 1
    tokens). A greedy loop ("of the House of the House ...") scores near 1; copying drafters (prompt lookup,
    Lookahead) are accepted almost always inside one, so a benchmark reports its speedups with and without
    such outputs."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    ids = list(ids)
    if not ids:
        return 0.0
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    for end in range(n, len(ids) + 1):
        gram = tuple(ids[end - n:end])
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(ids)


@dataclass
class StepRecord:
    """One step: nodes drafted, tree depth, tokens accepted, and the emitted tokens (accepted + bonus)."""

    drafted: int
    depth: int
    accepted: int
    tokens: list[int]

    @property
    def emitted(self) -> int:
        return len(self.tokens)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens": list(self.tokens)}


@dataclass
class SpeculativeGeneration:
    """Result of `speculative_generate` (the fields of `workbench.models.Generation` plus draft statistics)."""

    prompt_ids: list[int]
    new_ids: list[int]
    text: str
    stop_reason: str
    seconds: float
    prefill_seconds: float
    draft_seconds: float
    forward_calls: int
    tokens_processed: int
    steps: list[StepRecord] = field(default_factory=list)
    drafter: str = ""
    verifier: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return len(self.new_ids) / self.seconds if self.seconds > 0 else float("inf")

    @property
    def tau(self) -> float:
        return sum(s.emitted for s in self.steps) / len(self.steps) if self.steps else 0.0

    @property
    def acceptance_rate(self) -> float:
        drafted = sum(s.drafted for s in self.steps)
        return sum(s.accepted for s in self.steps) / drafted if drafted else 0.0

    @property
    def per_position_acceptance(self) -> list[float]:
        depth = max((s.depth for s in self.steps), default=0)
        out = []
        for d in range(1, depth + 1):
            tried = [s for s in self.steps if s.depth >= d and s.accepted >= d - 1]
            out.append(sum(s.accepted >= d for s in tried) / len(tried) if tried else 0.0)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_ids": list(self.prompt_ids), "new_ids": list(self.new_ids), "text": self.text,
            "stop_reason": self.stop_reason, "seconds": float(self.seconds),
            "prefill_seconds": float(self.prefill_seconds), "draft_seconds": float(self.draft_seconds),
            "tokens_per_second": float(self.tokens_per_second), "forward_calls": int(self.forward_calls),
            "tokens_processed": int(self.tokens_processed), "tau": float(self.tau),
            "acceptance_rate": float(self.acceptance_rate),
            "per_position_acceptance": [float(x) for x in self.per_position_acceptance],
            "steps": [s.to_dict() for s in self.steps], "drafter": self.drafter, "verifier": self.verifier,
            "settings": dict(self.settings),
        }

    def view(self, step: int | None = None, drafts: Any = None, tokenizer: Any = None) -> Any:
        """The interactive view of this result (`workbench.speculative.view.speculative_view`): the draft tree of
        `step`, accepted tokens per step, summary and steps tables. `drafts`: the DraftRecorder the generation
        drafted through, to show full draft trees (the result keeps only the emitted path of each step)."""
        from workbench.speculative.view import speculative_view

        return speculative_view(self, step, drafts, tokenizer)

    def show(self, step: int | None = None, drafts: Any = None, tokenizer: Any = None) -> Any:
        """Display the live widget (in Jupyter) and return it."""
        return self.view(step, drafts, tokenizer).show()

    def __repr__(self) -> str:
        return (f"SpeculativeGeneration({len(self.new_ids)} new tokens, {len(self.steps)} steps, tau={self.tau:.2f}, "
                f"{self.tokens_per_second:.1f} tok/s, {self.forward_calls} forward calls, drafter={self.drafter}, "
                f"verifier={self.verifier}, stop={self.stop_reason}): {self.text!r}")

    def _repr_html_(self) -> str:
        accepted = ", ".join(f"{x:.2f}" for x in self.per_position_acceptance[:8])
        return (f"<div><b>SpeculativeGeneration</b> &middot; {html.escape(self.drafter)} + "
                f"{html.escape(self.verifier)} &middot; {len(self.new_ids)} new tokens in {len(self.steps)} steps "
                f"&middot; &tau; = {self.tau:.2f} &middot; {self.tokens_per_second:.1f} tok/s &middot; "
                f"per-position acceptance [{accepted}] &middot; stop: {html.escape(self.stop_reason)}"
                f"<pre style='white-space:pre-wrap'>{html.escape(self.text)}</pre></div>")
