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

`count_pairs` is the initial count itself (what the trainer counts before its first merge), in plain Python on
the CPU or, with a CUDA device, on flat arrays through the `bpe_pair_counts` kernel op (workbench.kernels).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch


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


def flatten_word_table(seqs: Sequence[Sequence[int]], freqs: Sequence[int],
                       device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A word table as flat int64 arrays on `device`: ids [T] (the words one after another), offsets [W + 1]
    (word w is ids[offsets[w]:offsets[w + 1]]) and counts [W]."""
    if len(seqs) != len(freqs):
        raise ValueError(f"seqs and freqs must have the same length, got {len(seqs)} and {len(freqs)}")
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=int(offsets[-1]))
    counts = np.asarray(freqs, dtype=np.int64).reshape(len(seqs))
    return tuple(torch.from_numpy(a).to(device) for a in (ids, offsets, counts))


def count_pairs(seqs: Sequence[Sequence[int]], freqs: Sequence[int],
                device: str | torch.device | None = None) -> dict[tuple[int, int], int]:
    """Count of every adjacent pair of the token sequences `seqs`, each weighted by its frequency (pairs with
    count 0 left out): the counts a BPE trainer starts from.

    device None or a CPU device: the plain Python counter (the trainer's own loop). A CUDA device: the table is
    flattened onto it (`flatten_word_table`) and counted by `workbench.kernels.bpe_pair_counts` (the CUDA hash-
    table kernel when CuPy sees the device, else its PyTorch reference); same dictionary either way.
    """
    if device is None or torch.device(device).type == "cpu":
        counts: dict[tuple[int, int], int] = defaultdict(int)
        for toks, f in zip(seqs, freqs, strict=True):
            if f:
                for pair in pairwise(toks):
                    counts[pair] += f
        return dict(counts)
    from workbench.kernels.bpe_pair_counts import bpe_pair_counts

    return bpe_pair_counts(*flatten_word_table(seqs, freqs, device)).to_dict()
