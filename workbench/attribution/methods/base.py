"""The Attributor interface: a small dataclass of options with `check(problem)` and `run(problem)`.

    check(problem)            problem-dependent validation (e.g. enough samples for the number of features),
                              called before any model work, on a Problem whose target is not resolved yet
                              (problem.target is None: the greedy generation has not run)
    run(problem, progress)    -> MethodOutput

`level` says what the columns of `MethodOutput.matrix` are: "token" (one column per source token; `attribute`
sums them into the requested units) or "unit" (the units themselves are the features that are perturbed).
Option values are validated in `__post_init__`, so a bad option fails when the method is built.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from workbench.attribution.chunking import check_budget
from workbench.attribution.problem import Problem
from workbench.tokenization.protocol import InputTypeError


@dataclass
class MethodOutput:
    """What a method returns.

    matrix: [R, columns] attributions (columns: tokens or units, see Attributor.level).
    values: [R] the target scores of the unperturbed input f(x), when the method computed them.
    extras: method-specific arrays and numbers (standard errors, completeness gap, per-layer attention ...).
    backward_passes: autograd backward calls made; evaluations: inputs scored by the model (batch rows).
    """

    matrix: np.ndarray
    values: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    backward_passes: int = 0
    evaluations: int = 0


@dataclass
class Attributor:
    """Base of every attribution method (see the module docstring)."""

    name: ClassVar[str] = ""
    level: ClassVar[str] = "token"

    def check(self, problem: Problem) -> None:
        """Problem-dependent checks, before any work. Default: none."""

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The method's options as a JSON-safe dict."""
        return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
                for k, v in asdict(self).items()}


def check_int(value: object, param: str, minimum: int) -> int:
    """An int >= minimum (bool rejected), else ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{param} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: object, param: str, allowed: tuple) -> Any:
    if value not in allowed:
        raise ValueError(f"{param} must be one of {list(allowed)}, got {value!r}")
    return value


def check_flags(method: Attributor, names: tuple[str, ...]) -> None:
    """Each named option is True or False, else InputTypeError naming it."""
    for name in names:
        if not isinstance(getattr(method, name), bool):
            raise InputTypeError(f"{name} must be True or False, got {getattr(method, name)!r}")


def check_perturbation_options(method: Attributor) -> None:
    """The options of a method that scores perturbed inputs through PerturbationValue: `memory_budget` (None or
    bytes; normalised in place), `batch_size` >= 1, `seed` >= 0 where the method has one, `reuse_prefix` True/False."""
    method.memory_budget = check_budget(method.memory_budget)
    check_int(method.batch_size, "batch_size", 1)
    if hasattr(method, "seed"):
        check_int(method.seed, "seed", 0)
    check_flags(method, ("reuse_prefix",))
