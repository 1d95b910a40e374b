"""Shapley values by permutation sampling (Castro et al. 2009, "Polynomial calculation of the Shapley value
based on sampling"), with antithetic permutation pairs (each permutation and its reverse; Mitchell et al. 2022,
"Sampling Permutations for Shapley Value Estimation").

Players are the source units; the value of a coalition S is the target score with the units outside S
replaced by the baseline (workbench.attribution.perturb). For a permutation pi, the marginal contribution of
unit i is v(pre_pi(i) + {i}) - v(pre_pi(i)); its mean over uniformly random permutations is the Shapley value
(Shapley 1953). Every permutation costs the F - 1 coalitions between the empty and the full set (those two are
shared), minus coalitions already evaluated (the value function memoizes them).

Standard error: with antithetic pairs the samples are the per-pair means of the two marginal contributions
(independent across pairs), so the estimate is their mean and its standard error std(ddof=1) / sqrt(pairs);
without, the per-permutation marginal contributions. Hence at least 2 samples: permutations >= 4 (antithetic,
even) or >= 2.

Coalitions run `batch_size` at a time, fewer when a batch would exceed `memory_budget` bytes (default and
estimate: workbench.attribution.chunking).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench.attribution.methods.base import (
    Attributor,
    MethodOutput,
    check_flags,
    check_int,
    check_perturbation_options,
)
from workbench.attribution.methods.registry import register_method
from workbench.attribution.perturb import (
    PerturbationValue,
    check_baseline,
    check_baseline_for,
)
from workbench.attribution.problem import Problem

ValueFn = Callable[[np.ndarray], np.ndarray]


def permutation_shapley(value: ValueFn, n_features: int, permutations: int, rng: np.random.Generator,
                        antithetic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Estimate Shapley values of `value` (keep-masks [M, F] -> [M, R]) -> (estimates [R, F], std errors [R, F]).

    All coalitions of all sampled permutations are handed to `value` in one call (so it can batch them).
    """
    f = n_features
    if antithetic:
        base = [rng.permutation(f) for _ in range(permutations // 2)]
        perms = np.stack([p for b in base for p in (b, b[::-1])])
    else:
        perms = np.stack([rng.permutation(f) for _ in range(permutations)])
    n = len(perms)
    # masks[k, j] = coalition of the first j players of permutation k, j = 0..F
    ranks = np.empty_like(perms)
    ranks[np.arange(n)[:, None], perms] = np.arange(f)[None, :]
    masks = ranks[:, None, :] < np.arange(f + 1)[None, :, None]  # [n, F + 1, F]
    values = value(masks.reshape(-1, f)).reshape(n, f + 1, -1)  # [n, F + 1, R]
    steps = values[:, 1:] - values[:, :-1]  # [n, F, R]: contribution of the player added at step j
    marginal = np.take_along_axis(steps, ranks[:, :, None], axis=1)  # [n, F(player), R]
    samples = (marginal[0::2] + marginal[1::2]) / 2 if antithetic else marginal
    estimate = samples.mean(0).T
    stderr = samples.std(0, ddof=1).T / np.sqrt(len(samples))
    return estimate, stderr


@register_method("shapley")
@dataclass
class Shapley(Attributor):
    """Permutation-sampling Shapley values over units, with a standard error per entry."""

    level = "unit"

    permutations: int = 32
    antithetic: bool = True
    baseline: str | int = "pad"
    batch_size: int = 16
    seed: int = 0
    reuse_prefix: bool = True
    memory_budget: int | None = None

    def __post_init__(self) -> None:
        check_flags(self, ("antithetic",))
        check_int(self.permutations, "permutations", 4 if self.antithetic else 2)
        if self.antithetic and self.permutations % 2:
            raise ValueError(f"permutations must be even with antithetic=True (pairs), got {self.permutations}")
        self.baseline = check_baseline(self.baseline)
        check_perturbation_options(self)

    def check(self, problem: Problem) -> None:
        check_baseline_for(problem, self.baseline)

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        value = PerturbationValue(problem, self.baseline, self.batch_size, self.reuse_prefix, progress,
                                  self.memory_budget)
        rng = np.random.default_rng(self.seed)
        estimate, stderr = permutation_shapley(value, problem.n_units, self.permutations, rng, self.antithetic)
        full = value(np.ones((1, problem.n_units), dtype=bool))[0]
        empty = value(np.zeros((1, problem.n_units), dtype=bool))[0]
        extras = {"stderr": stderr, "empty_values": empty, "coalitions": value.evaluations,
                  "kv_reused_tokens": value.reused_tokens}
        return MethodOutput(estimate, full, extras, evaluations=value.evaluations)
