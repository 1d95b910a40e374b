"""Occlusion / leave-one-out (Zeiler & Fergus 2014 for images; Li et al. 2016, "Understanding Neural Networks
through Representation Erasure", for text).

attribution[r, u] = score_r(x) - score_r(x with unit u replaced by the baseline): one perturbation per unit
(the unit's tokens replaced together, see workbench.attribution.units), plus the unperturbed input. Every
target row is scored from one teacher-forced pass per perturbation; perturbations run `batch_size` at a time
(fewer on long prompts, so that a batch stays within `memory_budget` bytes: workbench.attribution.chunking);
with `reuse_prefix` the unperturbed prompt's KV cache before each batch's first occluded token is reused
(exactly what is reused: workbench.attribution.perturb). Cost: n_units + 1 model evaluations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.attribution.methods.base import (
    Attributor,
    MethodOutput,
    check_perturbation_options,
)
from workbench.attribution.methods.registry import register_method
from workbench.attribution.perturb import (
    PerturbationValue,
    check_baseline,
    check_baseline_for,
)
from workbench.attribution.problem import Problem


@register_method("occlusion")
@dataclass
class Occlusion(Attributor):
    """Leave-one-unit-out with baseline "pad" | "zero" | token id."""

    level = "unit"

    baseline: str | int = "pad"
    batch_size: int = 16
    reuse_prefix: bool = True
    memory_budget: int | None = None

    def __post_init__(self) -> None:
        self.baseline = check_baseline(self.baseline)
        check_perturbation_options(self)

    def check(self, problem: Problem) -> None:
        check_baseline_for(problem, self.baseline)

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        value = PerturbationValue(problem, self.baseline, self.batch_size, self.reuse_prefix, progress,
                                  self.memory_budget)
        f = problem.n_units
        masks = np.ones((f + 1, f), dtype=bool)
        masks[np.arange(1, f + 1), np.arange(f)] = False
        scores = value(masks)  # [F + 1, R]
        matrix = (scores[0][None, :] - scores[1:]).T  # [R, F]
        return MethodOutput(matrix, scores[0], {"kv_reused_tokens": value.reused_tokens},
                            evaluations=value.evaluations)
