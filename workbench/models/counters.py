"""Cost counters of an LM: how many forward calls, how many tokens fed."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Counters:
    """Incremented by every `LM.forward` call: one call, and batch * new tokens processed."""

    forward_calls: int = 0
    tokens_processed: int = 0

    def record(self, tokens: int) -> None:
        self.forward_calls += 1
        self.tokens_processed += tokens

    def reset(self) -> None:
        self.forward_calls = 0
        self.tokens_processed = 0

    def snapshot(self) -> Counters:
        """A copy of the current values (subtract two snapshots to measure a region of code)."""
        return Counters(self.forward_calls, self.tokens_processed)

    def __sub__(self, other: Counters) -> Counters:
        return Counters(self.forward_calls - other.forward_calls, self.tokens_processed - other.tokens_processed)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
