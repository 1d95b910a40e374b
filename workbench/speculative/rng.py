"""Random choices of the verifiers, drawn from a torch.Generator or enumerated exactly.

Every verifier makes its random decisions through two calls only: `bernoulli(p)` (accept or reject) and
`categorical(weights)` (draw a token). `TorchRandom` answers them from a seeded torch.Generator; `enumerate_outcomes`
runs a program once per possible sequence of answers (depth-first replay: each run follows a recorded script of
choices and queues the untried alternatives of every new choice point), returning every outcome with its exact
probability. The verifiers' exact output distributions (and the losslessness tests) come from running the very
same code under enumeration, not from a separate formula.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

T = TypeVar("T")


@runtime_checkable
class RandomSource(Protocol):
    def bernoulli(self, p: float) -> bool:
        """True with probability p (clamped to [0, 1])."""

    def categorical(self, weights: torch.Tensor) -> int:
        """An index drawn with probability proportional to weights [V] (>= 0, positive sum)."""


class TorchRandom:
    """Random choices from a torch.Generator (None: torch's global generator)."""

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator
        self.device = generator.device if generator is not None else torch.device("cpu")

    def bernoulli(self, p: float) -> bool:
        if p >= 1:
            return True
        if p <= 0:
            return False
        u = torch.rand((), generator=self.generator, dtype=torch.float64, device=self.device)
        return bool(u.item() < p)

    def categorical(self, weights: torch.Tensor) -> int:
        w = weights.to(device=self.device, dtype=torch.float64)
        return int(torch.multinomial(w, 1, generator=self.generator).item())


def as_random_source(generator: torch.Generator | RandomSource | None) -> RandomSource:
    """A RandomSource for a torch.Generator, None (global generator) or an existing RandomSource."""
    if generator is None or isinstance(generator, torch.Generator):
        return TorchRandom(generator)
    if isinstance(generator, RandomSource):
        return generator
    raise ValueError(f"generator must be a torch.Generator, a RandomSource or None, got {type(generator).__name__}")


class ReplayRandom:
    """Follows a script of option indices; past its end takes option 0 and records the other options."""

    def __init__(self, script: list[int]):
        self.script = list(script)
        self.position = 0
        self.probability = 1.0
        self.branches: list[list[int]] = []

    def _choose(self, options: list[tuple[object, float]]):
        if self.position == len(self.script):
            for alternative in range(1, len(options)):
                self.branches.append(self.script + [alternative])
            self.script.append(0)
        value, prob = options[self.script[self.position]]
        self.position += 1
        self.probability *= prob
        return value

    def bernoulli(self, p: float) -> bool:
        p = min(max(float(p), 0.0), 1.0)
        options = [(value, prob) for value, prob in ((True, p), (False, 1.0 - p)) if prob > 0]
        return self._choose(options)

    def categorical(self, weights: torch.Tensor) -> int:
        w = weights.detach().to("cpu", torch.float64).numpy()
        total = float(w.sum())
        if w.ndim != 1 or not (w >= 0).all() or not total > 0:
            raise ValueError("categorical weights must be a 1-D tensor of values >= 0 with a positive sum")
        support = np.flatnonzero(w > 0)
        return self._choose(list(zip(support.tolist(), (w[support] / total).tolist())))


def enumerate_outcomes(program: Callable[[RandomSource], T]) -> list[tuple[float, T]]:
    """Every outcome of program(rng) with its exact probability (program must be deterministic given rng).

    The probabilities sum to 1 up to float rounding. Cost: one run of `program` per outcome.
    """
    outcomes: list[tuple[float, T]] = []
    pending: list[list[int]] = [[]]
    while pending:
        rng = ReplayRandom(pending.pop())
        value = program(rng)
        if rng.position != len(rng.script):
            raise RuntimeError("program made fewer random choices on replay than scripted: it is not deterministic")
        pending.extend(rng.branches)
        outcomes.append((rng.probability, value))
    return outcomes
