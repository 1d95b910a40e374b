"""Hierarchical Shapley values (TextGenSHAP: Enouen et al. 2023, "TextGenSHAP: Scalable Post-hoc Explanations in
Text Generation with Long Documents").

Flat Shapley sampling over F units costs about F - 1 coalitions per permutation; on a long prompt most units
matter little. TextGenSHAP's hierarchical estimate spends the samples where the value is:

1. coarse stage: the players are coarse units, groups of consecutive fine units: the prompt's sentences
   (`coarse="sentence"`) or blocks of `coarse` (an int) consecutive fine units. Their Shapley values are
   estimated by permutation sampling (workbench.attribution.methods.shapley.permutation_shapley); removing a
   coarse unit replaces all of its tokens by the baseline.
2. selection: coarse units are ranked by importance sum_r |phi_coarse[r, g]| (over target rows); the most
   important are refined: the first `top_k` of them, or (with `mass`) the fewest whose importance reaches
   `mass` x the total, whichever comes first.
3. fine stage: ONE Shapley game whose players are the fine units (the requested granularity: tokens, words,
   ...) inside the refined coarse units; every unrefined coarse unit is held PRESENT (its tokens unchanged) in
   every coalition. Estimated by permutation sampling with the same number of permutations.

Conventions (our reading, stated because the paper leaves room):
- the fine stage is one joint game over the tokens of all refined units, not one game per unit, so with every
  coarse unit refined it is exactly flat permutation Shapley over the fine units (same estimator, other
  random permutations): equal to it in expectation, within the reported standard errors;
- the returned matrix is at the requested granularity: refined fine units carry their fine Shapley value;
  the fine units of an unrefined coarse unit each carry an equal share of that coarse unit's value (so the
  coarse value is the sum of its columns); `extras["refined"]` marks which columns are fine estimates, and
  `extras["coarse_values"]` / `extras["coarse_stderr"]` / `extras["coarse_units"]` report the coarse stage;
- the fine values sum to v(all) - v(all but the refined units) (efficiency of the fine game), which equals the
  sum of the refined coarse values for additive models but not in general.
For an additive value (e.g. the tests' linear model) both stages are exact: fine values are the tokens' exact
Shapley values and a coarse value is the sum of its tokens' values.

Cost: both stages share one memoized, batched value function (workbench.attribution.perturb: KV-cache reuse of
the unperturbed prefix, batches split to `memory_budget`), so a coalition the two stages share (the full one,
ones removing whole refined units) runs once. The fine stage only removes tokens of refined units, so every
coalition reuses the cache up to the first refined unit. `extras` reports coarse_evaluations,
fine_evaluations, and flat_evaluations: the number of distinct coalitions flat `shapley` with the same
permutations, antithetic and seed would run over the fine units (counted from its permutations without model
work; it equals that method's `cost.evaluations`), and evaluations_saved = flat - ours.
Standard errors: as in `shapley`, per stage; a spread coarse value's column gets coarse stderr / its size.
"""
from __future__ import annotations

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
from workbench.attribution.methods.shapley import permutation_shapley
from workbench.attribution.perturb import (
    PerturbationValue,
    check_baseline,
    check_baseline_for,
)
from workbench.attribution.problem import Problem
from workbench.attribution.units import build_units


def coarse_groups(problem: Problem, coarse: str | int) -> list[list[int]]:
    """Groups of consecutive unit indices: the units of each sentence (by the sentence holding a unit's first
    token), or blocks of `coarse` units."""
    n = problem.n_units
    if isinstance(coarse, int):
        return [list(range(s, min(s + coarse, n))) for s in range(0, n, coarse)]
    text = problem.prompt
    sentences = build_units("sentence", text.ids, text.offsets, text.data)
    sentence_of = np.empty(problem.n_tokens, dtype=int)
    for k, unit in enumerate(sentences):
        sentence_of[unit.token_indices] = k
    groups: list[list[int]] = []
    last = None
    for u, unit in enumerate(problem.units):
        s = int(sentence_of[unit.token_indices[0]])
        if groups and s == last:
            groups[-1].append(u)
        else:
            groups.append([u])
        last = s
    return groups


def select_groups(importance: np.ndarray, top_k: int | None, mass: float | None) -> list[int]:
    """Indices of the coarse units to refine, most important first (see the module docstring)."""
    order = np.argsort(-importance, kind="stable")
    total = float(importance.sum())
    chosen, cum = [], 0.0
    for g in order:
        if top_k is not None and len(chosen) >= top_k:
            break
        if mass is not None and chosen and cum >= mass * total:
            break
        chosen.append(int(g))
        cum += float(importance[g])
    return chosen


def flat_coalition_count(f: int, permutations: int, seed: int, antithetic: bool = True) -> int:
    """Distinct coalitions flat permutation Shapley (`shapley` with these options) evaluates over f players:
    the same permutations drawn from the same seed, counted without model work (full and empty included)."""
    rng = np.random.default_rng(seed)
    if antithetic:
        base = [rng.permutation(f) for _ in range(permutations // 2)]
        perms = [p for b in base for p in (b, b[::-1])]
    else:
        perms = [rng.permutation(f) for _ in range(permutations)]
    seen: set[bytes] = set()
    steps = np.arange(f + 1)[:, None]
    for perm in perms:
        ranks = np.empty(f, dtype=int)
        ranks[perm] = np.arange(f)
        for row in np.packbits(ranks[None, :] < steps, axis=1):
            seen.add(row.tobytes())
    return len(seen)


@register_method("hierarchical_shapley")
@dataclass
class HierarchicalShapley(Attributor):
    """Coarse-then-fine permutation Shapley (TextGenSHAP): fine values only inside the most important units."""

    level = "unit"

    coarse: str | int = "sentence"
    top_k: int | None = 2
    mass: float | None = None
    permutations: int = 32
    antithetic: bool = True
    baseline: str | int = "pad"
    batch_size: int = 16
    seed: int = 0
    reuse_prefix: bool = True
    memory_budget: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.coarse, str):
            if self.coarse != "sentence":
                raise ValueError(f"coarse must be 'sentence' or an int block size >= 1, got {self.coarse!r}")
        else:
            self.coarse = check_int(self.coarse, "coarse", 1)
        if self.top_k is None and self.mass is None:
            raise ValueError("top_k and mass are both None: give top_k (an int >= 1), mass (a float in (0, 1]) "
                             "or both, to say which coarse units are refined")
        if self.top_k is not None:
            self.top_k = check_int(self.top_k, "top_k", 1)
        if self.mass is not None:
            if isinstance(self.mass, bool) or not isinstance(self.mass, (int, float)) or not 0 < self.mass <= 1:
                raise ValueError(f"mass must be None or a float in (0, 1], got {self.mass!r}")
            self.mass = float(self.mass)
        check_flags(self, ("antithetic", "reuse_prefix"))
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
        f = problem.n_units
        groups = coarse_groups(problem, self.coarse)
        member = np.zeros((len(groups), f), dtype=bool)
        for g, units in enumerate(groups):
            member[g, units] = True

        def coarse_value(masks: np.ndarray) -> np.ndarray:  # keep-masks over groups -> over units
            return value(np.asarray(masks, dtype=float) @ member > 0)

        coarse, coarse_se = permutation_shapley(coarse_value, len(groups), self.permutations, rng, self.antithetic)
        coarse_evaluations = value.evaluations

        refined_groups = select_groups(np.abs(coarse).sum(0), self.top_k, self.mass)
        players = np.flatnonzero(member[refined_groups].any(0))  # fine units of the refined groups, in order

        def fine_value(masks: np.ndarray) -> np.ndarray:  # unrefined units held present
            full = np.ones((len(masks), f), dtype=bool)
            full[:, players] = masks
            return value(full)

        fine, fine_se = permutation_shapley(fine_value, len(players), self.permutations, rng, self.antithetic)

        rows = coarse.shape[0]
        matrix, stderr = np.empty((rows, f)), np.empty((rows, f))
        for g, units in enumerate(groups):
            matrix[:, units] = coarse[:, g:g + 1] / len(units)
            stderr[:, units] = coarse_se[:, g:g + 1] / len(units)
        matrix[:, players], stderr[:, players] = fine, fine_se
        refined = np.zeros(f, dtype=bool)
        refined[players] = True

        ends = value(np.stack([np.ones(f, dtype=bool), np.zeros(f, dtype=bool)]))
        flat = flat_coalition_count(f, self.permutations, self.seed, self.antithetic)
        units = problem.units
        extras = {
            "stderr": stderr, "empty_values": ends[1], "refined": refined.tolist(),
            "coarse_values": coarse, "coarse_stderr": coarse_se, "refined_groups": refined_groups,
            "coarse_units": [{"text": problem.prompt.data[units[g[0]].start:units[g[-1]].end].decode(
                "utf-8", errors="replace"), "start": units[g[0]].start, "end": units[g[-1]].end, "units": g}
                for g in groups],
            "coalitions": value.evaluations, "coarse_evaluations": coarse_evaluations,
            "fine_evaluations": value.evaluations - coarse_evaluations, "flat_evaluations": flat,
            "evaluations_saved": flat - value.evaluations, "kv_reused_tokens": value.reused_tokens,
        }
        return MethodOutput(matrix, ends[0], extras, evaluations=value.evaluations)
