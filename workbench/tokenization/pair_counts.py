"""PairCountLog: the count of every adjacent token pair at every BPE merge step, stored as deltas.

Data mixture inference (Hayase et al. 2024, "Data Mixture Inference: What do BPE Tokenizers Reveal about
their Training Data?") needs, for each merge step t, how often each pair occurred in the (weighted) corpus
just before merge t was chosen. Storing a full table per step costs steps x pairs. The trainer instead
records what it already computes: the initial counts, then for each step only the pairs whose count changed
and their new count (a pair that disappears gets count 0). That is proportional to the training work, and
every table is recovered exactly by replaying the deltas (`counts_at`).

Arrays (all int64, saved with numpy's .npz):
    init_left, init_right, init_count       counts before the first merge (step 0)
    merge_left, merge_right                 the pair merged at step t (t = 0 .. steps-1)
    offsets                                 deltas of step t are rows offsets[t]:offsets[t+1]
    left, right, count                      pair and its count AFTER merge t was applied
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class PairCountLog:
    init_left: np.ndarray
    init_right: np.ndarray
    init_count: np.ndarray
    merge_left: np.ndarray
    merge_right: np.ndarray
    offsets: np.ndarray
    left: np.ndarray
    right: np.ndarray
    count: np.ndarray

    @property
    def steps(self) -> int:
        """Number of merges recorded."""
        return len(self.merge_left)

    def counts_at(self, step: int) -> dict[tuple[int, int], int]:
        """Counts of all pairs present just before merge `step` was chosen (step == steps: after the last)."""
        if not 0 <= step <= self.steps:
            raise ValueError(f"step must be in [0, {self.steps}], got {step}")
        counts = {(int(a), int(b)): int(c) for a, b, c in zip(self.init_left, self.init_right, self.init_count)}
        end = int(self.offsets[step])
        for a, b, c in zip(self.left[:end].tolist(), self.right[:end].tolist(), self.count[:end].tolist()):
            if c:
                counts[(a, b)] = c
            else:
                counts.pop((a, b), None)
        return counts

    def top(self, step: int, k: int = 10) -> list[tuple[tuple[int, int], int]]:
        """The `k` most frequent pairs before merge `step`, by count then by pair ids."""
        counts = self.counts_at(step)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        np.savez_compressed(path, **{name: getattr(self, name) for name in self.__dataclass_fields__})
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: str | Path) -> PairCountLog:
        with np.load(Path(path)) as data:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, int]:
        return {"steps": self.steps, "initial_pairs": len(self.init_count), "delta_rows": len(self.count)}


class PairCountRecorder:
    """Collects a PairCountLog while a trainer runs (see bpe_train.py)."""

    def __init__(self, initial: dict[tuple[int, int], int]) -> None:
        items = sorted(initial.items())
        self._init = (
            np.array([p[0] for p, _ in items], dtype=np.int64),
            np.array([p[1] for p, _ in items], dtype=np.int64),
            np.array([c for _, c in items], dtype=np.int64),
        )
        self._merges: list[tuple[int, int]] = []
        self._offsets = [0]
        self._rows: list[tuple[int, int, int]] = []

    def step(self, merged: tuple[int, int], changed: Iterable[tuple[tuple[int, int], int]]) -> None:
        self._merges.append(merged)
        self._rows.extend((a, b, c) for (a, b), c in sorted(changed))
        self._offsets.append(len(self._rows))

    def finish(self) -> PairCountLog:
        rows = np.array(self._rows, dtype=np.int64).reshape(-1, 3)
        merges = np.array(self._merges, dtype=np.int64).reshape(-1, 2)
        return PairCountLog(
            *self._init,
            merge_left=merges[:, 0].copy(),
            merge_right=merges[:, 1].copy(),
            offsets=np.array(self._offsets, dtype=np.int64),
            left=rows[:, 0].copy(),
            right=rows[:, 1].copy(),
            count=rows[:, 2].copy(),
        )
