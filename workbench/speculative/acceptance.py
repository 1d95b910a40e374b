"""Acceptance statistics for the cost-aware budget: how often a draft token at depth d is accepted, given the
first d - 1 were, per drafter and per the drafter's draft key.

A drafter may label each step's draft before proposing it (`Drafter.draft_key(context)`): Lookahead returns the
length of the context suffix it matched, prompt lookup how far back the context agrees with the occurrence it
copies from (capped at its key_cap), a strong signal (greedy, default model, the 12 benchmark prompts: a 1-token
match had its first token accepted ~26% of the time, a 3-token agreement ~56%, one of 12 or more tokens ~94%).
Counts c[key][d] (steps whose draft reached depth d with the first d - 1 tokens accepted) and s[key][d] (of
those, accepted at depth d) are kept for the LM's lifetime (`table_for(lm, drafter_name)`), across
generations, since one generation is too short to learn them per key.

Estimate of a_d for a key (Laplace smoothing, then shrinkage towards the pooled estimate):
- pooled over every key of the drafter: p_d = (s_d + 1) / (c_d + 2) where c_d > 0, else p_{d-1} (p_0 = 1/2);
- for the key: a_d = (s[key][d] + 2 p_d) / (c[key][d] + 2) where c[key][d] > 0, else a_{d-1} of the key when
  the key has been seen at a smaller depth, else p_d.
Only the draft size depends on these numbers, never which tokens are emitted by a greedy verifier.
"""
from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Hashable

PRIOR_WEIGHT = 2.0  # pseudo-counts of the pooled estimate in a key's estimate

_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # lm -> {drafter name: AcceptanceTable}


class AcceptanceTable:
    """Counts per (draft key, depth) and the smoothed estimates of the module docstring."""

    def __init__(self) -> None:
        self.counts: dict[Hashable, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))

    def record(self, key: Hashable, depth: int, accepted: int) -> None:
        """One verified draft with this key: its deepest node at `depth`, `accepted` tokens accepted."""
        for d in range(1, depth + 1):
            if accepted >= d - 1:
                cell = self.counts[key][d]
                cell[0] += 1
                cell[1] += accepted >= d

    def estimate(self, key: Hashable, depth: int) -> list[float]:
        """Estimated conditional acceptance a_1..a_depth for a draft with this key."""
        out: list[float] = []
        pooled, own = 0.5, None
        mine = self.counts.get(key, {})
        for d in range(1, depth + 1):
            tried = sum(cells[d][0] for cells in self.counts.values() if d in cells)
            if tried:
                accepted = sum(cells[d][1] for cells in self.counts.values() if d in cells)
                pooled = (accepted + 1) / (tried + 2)
            if d in mine:
                own = (mine[d][1] + PRIOR_WEIGHT * pooled) / (mine[d][0] + PRIOR_WEIGHT)
            out.append(own if own is not None else pooled)
        return out


def table_for(lm: object, drafter_name: str) -> AcceptanceTable:
    """The acceptance table of a drafter (by name) on this LM, created empty on first use."""
    return _TABLES.setdefault(lm, {}).setdefault(drafter_name, AcceptanceTable())
