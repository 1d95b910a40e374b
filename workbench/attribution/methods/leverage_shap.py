"""Leverage SHAP (Musco & Witter 2025, "Provably Accurate Shapley Value Estimation via Leverage Score
Sampling", ICLR 2025).

KernelSHAP's regression (see kernel_shap.py) over coalitions z with the Shapley kernel
k(z) = (F - 1) / (C(F, |z|) |z| (F - |z|)), 0 < |z| < F, and the constraint sum(phi) = v(1) - v(0). Musco &
Witter show that the statistical leverage scores of the (constraint-projected, kernel-weighted) design rows
are the same for every coalition size: sampling by leverage means a coalition SIZE uniform over 1 .. F-1, then a
uniform subset of that size. Sampled rows are reweighted by k(z) / p(z) and the constrained weighted
least-squares problem is solved exactly (eliminating one player; `kernel_shap.solve`). With paired sampling
every coalition comes with its complement; without replacement, a size s can hold at most C(F, s) coalitions.

The design used here (`design`), stated as what it is:
- `without_replacement=True` (default): the paper samples each coalition independently with probability
  min(1, c * leverage) for a c that spends the budget in expectation; sizes whose C(F, s) coalitions fit under
  that level are then taken whole. We make this deterministic: a water-filling allocation of exactly `samples`
  coalitions (`allocate`): every size gets the same number m_s = min(C(F, s), level) (sizes with C(F, s) <= level
  are ENUMERATED, as the shap package's KernelExplainer does for its highest-weight sizes), then m_s distinct
  uniform subsets of each size (stratified simple random sampling without replacement). A row of size s gets
  the Horvitz-Thompson weight k(s) C(F, s) / m_s; an enumerated size is summed exactly. When `samples` covers all
  2^F - 2 proper coalitions the result is the exact Shapley value.
- `without_replacement=False`: the paper's basic i.i.d. scheme: `samples` draws (pairs when paired) of a uniform
  size and a uniform subset, each weighted k(z) / p(z); repeats are one model evaluation (memo) with their
  weights added.
- `sizes="kernel"` allocates in proportion to the kernel's mass per size, (F - 1) / (s (F - s)), instead of
  uniformly (that is the sampling distribution of Lundberg & Lee's KernelSHAP, here with the same water-filling
  and without-replacement design), for comparison.

With pairing, sizes s and F - s share their allocation (each pair is one coalition of each); for even F the
middle size is sampled as distinct complementary pairs. Standard error: bootstrap that resamples the pairs (or
rows) inside each sampled size, enumerated sizes held fixed; no extra model evaluations.

Minimum samples: as KernelSHAP, F - 1 independent rows after eliminating a player, and a coalition and its
complement give the same row up to sign: `samples >= F - 1`, or `2 (F - 1)` when paired.
"""
from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench.attribution.methods.base import (
    MethodOutput,
    check_choice,
    check_int,
)
from workbench.attribution.methods.kernel_shap import (
    CoalitionSampler,
    check_sampler_options,
    minimum_samples,
    paired_note,
    sampler_output,
    solve,
)
from workbench.attribution.methods.registry import register_method
from workbench.attribution.perturb import (
    PerturbationValue,
    check_baseline_for,
)
from workbench.attribution.problem import Problem

ValueFn = Callable[[np.ndarray], np.ndarray]
SIZE_RULES = ("leverage", "kernel")


@dataclass
class Group:
    """Sizes sampled together: (s, F - s) as pairs, the middle size of an even F as complementary pairs, or one
    size (unpaired). `units` = draws: pairs (paired) or coalitions; `capacity` = the most distinct draws."""

    sizes: tuple[int, ...]
    capacity: int
    share: float  # relative allocation per draw-unit at a common level
    units: int = 0

    @property
    def enumerated(self) -> bool:
        return self.units == self.capacity


def groups(f: int, paired: bool, sizes: str = "leverage") -> list[Group]:
    """The sampling groups of F players. `share` makes every size get the same number of coalitions at a
    common level ("leverage"), or a number proportional to the kernel's mass at that size ("kernel")."""
    mass = {s: 1.0 if sizes == "leverage" else 1.0 / (s * (f - s)) for s in range(1, f)}
    if not paired:
        return [Group((s,), math.comb(f, s), mass[s]) for s in range(1, f)]
    out = [Group((s, f - s), math.comb(f, s), mass[s]) for s in range(1, (f + 1) // 2)]
    if f % 2 == 0:  # a pair here is 2 coalitions of the same size: half as many pairs for the same count
        out.append(Group((f // 2,), math.comb(f, f // 2) // 2, mass[f // 2] / 2))
    return out


def allocate(f: int, samples: int, paired: bool = True, sizes: str = "leverage") -> list[Group]:
    """Water-filling: `samples` coalitions (samples // 2 pairs when paired) split over the groups as
    min(capacity, level * share), the level chosen to spend the budget; the integer remainder goes to the groups
    with the largest fractional parts. Groups at capacity are enumerated."""
    gs = groups(f, paired, sizes)
    budget = min(samples // 2 if paired else samples, sum(g.capacity for g in gs))
    lo, hi = 0.0, float(max(g.capacity / g.share for g in gs))
    for _ in range(200):  # bisection on the level
        mid = (lo + hi) / 2
        if sum(min(g.capacity, mid * g.share) for g in gs) < budget:
            lo = mid
        else:
            hi = mid
    want = [min(g.capacity, hi * g.share) for g in gs]
    for g, w in zip(gs, want):
        g.units = min(g.capacity, math.floor(w + 1e-9))
    left = budget - sum(g.units for g in gs)
    for k in sorted(range(len(gs)), key=lambda k: -(want[k] - gs[k].units)):
        if left <= 0:
            break
        if gs[k].units < gs[k].capacity:
            gs[k].units += 1
            left -= 1
    return gs


def _subsets(f: int, size: int, count: int, capacity: int, rng: np.random.Generator, fixed: int | None = None
             ) -> np.ndarray:
    """`count` distinct uniform subsets of {0..F-1} of `size` (containing player `fixed` if given) -> [count, F]."""
    if count == 0:
        return np.zeros((0, f), dtype=bool)
    if capacity <= 200_000:
        rest = [p for p in range(f) if p != fixed]
        combos = list(itertools.combinations(rest, size - (fixed is not None)))
        pick = rng.choice(len(combos), size=count, replace=False)
        masks = np.zeros((count, f), dtype=bool)
        for row, k in enumerate(pick):
            masks[row, list(combos[k])] = True
            if fixed is not None:
                masks[row, fixed] = True
        return masks
    seen: set[bytes] = set()
    rows = []
    while len(rows) < count:  # rejection: count << capacity here
        m = np.zeros(f, dtype=bool)
        m[rng.permutation(f)[:size]] = True
        if fixed is not None and not m[fixed]:
            m = ~m
        if m.tobytes() not in seen:
            seen.add(m.tobytes())
            rows.append(m)
    return np.stack(rows)


@dataclass
class Design:
    """Sampled coalitions: masks [M, F], `weight` [M] (regression weight k(z) / p(z), summed over repeats),
    `stratum` [M] (its size), `unit` [M] (the pair / draw it belongs to, for bootstrap and folds), `count` {size:
    coalitions of that size}, `enumerated` {size: bool}."""

    masks: np.ndarray
    weight: np.ndarray
    stratum: np.ndarray
    unit: np.ndarray
    count: dict[int, int]
    enumerated: dict[int, bool]


def kernel_weight(f: int, s: np.ndarray | int) -> np.ndarray:
    """The Shapley kernel k(z) of a coalition of size s (0 < s < F)."""
    s = np.asarray(s, dtype=float)
    comb = np.array([math.comb(f, int(x)) for x in np.atleast_1d(s)], dtype=float).reshape(s.shape)
    return (f - 1) / (comb * s * (f - s))


def design(f: int, samples: int, rng: np.random.Generator, paired: bool = True, sizes: str = "leverage",
           without_replacement: bool = True) -> Design:
    """The coalitions Leverage SHAP evaluates (module docstring), with their weights."""
    if without_replacement:
        parts, units, next_unit = [], [], 0
        count: dict[int, int] = {}
        enumerated: dict[int, bool] = {}
        for g in allocate(f, samples, paired, sizes):
            s = g.sizes[0]
            if paired and len(g.sizes) == 1:  # even F, middle size: pairs (S, complement) with S containing 0
                base = _subsets(f, s, g.units, g.capacity, rng, fixed=0)
            else:
                base = _subsets(f, s, g.units, g.capacity, rng)
            rows = np.stack([base, ~base], axis=1).reshape(-1, f) if paired else base
            parts.append(rows)
            per = 2 if paired else 1
            units.append(np.repeat(np.arange(next_unit, next_unit + g.units), per))
            next_unit += g.units
            for size in g.sizes:
                count[size] = int((rows.sum(1) == size).sum())
                enumerated[size] = g.enumerated
        masks = np.concatenate(parts) if parts else np.zeros((0, f), dtype=bool)
        stratum = masks.sum(1)
        c = np.array([count[int(s)] for s in stratum], dtype=float)
        weight = kernel_weight(f, stratum) * np.array([math.comb(f, int(s)) for s in stratum], dtype=float) / c
        return Design(masks, weight, stratum, np.concatenate(units) if units else np.zeros(0, int), count, enumerated)
    draws = samples // 2 if paired else samples
    size = rng.integers(1, f, size=draws)
    keys = rng.random((draws, f))
    masks = keys <= np.sort(keys, axis=1)[np.arange(draws), size - 1][:, None]
    unit = np.arange(draws)
    if paired:
        masks = np.stack([masks, ~masks], axis=1).reshape(-1, f)
        unit = np.repeat(unit, 2)
    stratum = masks.sum(1)
    prob = 1.0 / ((f - 1) * np.array([math.comb(f, int(s)) for s in stratum], dtype=float))
    weight = kernel_weight(f, stratum) / (prob * len(masks))
    count = {s: int((stratum == s).sum()) for s in range(1, f)}
    return Design(masks, weight, stratum, unit, count, {s: False for s in range(1, f)})


def leverage_shap(value: ValueFn, n_features: int, samples: int, rng: np.random.Generator, paired: bool = True,
                  bootstrap: int = 100, sizes: str = "leverage", without_replacement: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Leverage SHAP estimates of `value` (keep-masks [M, F] -> [M, R]) -> (estimates [R, F], std errors [R, F],
    rank of the regression design)."""
    f = n_features
    ends = value(np.stack([np.zeros(f, dtype=bool), np.ones(f, dtype=bool)]))
    empty, full = ends[0], ends[1]
    if f == 1:
        return (full - empty)[:, None], np.zeros((len(full), 1)), 0
    d = design(f, samples, rng, paired, sizes, without_replacement)
    y = value(d.masks) - empty[None, :]
    total = full - empty
    estimate, rank = solve(d.masks, y, total, d.weight)
    if rank < f - 1:
        warnings.warn(f"Leverage SHAP: the {len(d.masks)} sampled coalitions span only rank {rank} < features - 1 = "
                      f"{f - 1}; the estimate is not identified (minimum-norm solution): increase samples",
                      stacklevel=3)
    reps = []
    if without_replacement:
        key = np.minimum(d.stratum, f - d.stratum) if paired else d.stratum  # a pair's rows stay together
        sampled = [np.flatnonzero(key == s) for s in np.unique(key) if not d.enumerated[int(s)]]
    else:  # i.i.d. draws: resample the draws (pairs) as a whole
        sampled = [np.arange(len(d.masks))]
    if sampled:
        for _ in range(4 * bootstrap):
            counts = np.ones(len(d.masks))
            for rows in sampled:  # resample the units (pairs) inside each sampled size
                units = np.unique(d.unit[rows])
                draw = rng.multinomial(len(units), np.full(len(units), 1.0 / len(units)))
                counts[rows] = draw[np.searchsorted(units, d.unit[rows])]
            rep, rep_rank = solve(d.masks, y, total, d.weight * counts)
            if rep_rank == rank:
                reps.append(rep)
                if len(reps) == bootstrap:
                    break
    stderr = np.std(np.stack(reps), axis=0, ddof=1) if len(reps) > 1 else np.zeros_like(estimate)
    return estimate, stderr, rank


@register_method("leverage_shap")
@dataclass
class LeverageShap(CoalitionSampler):
    """Leverage SHAP over units: `samples` coalitions by leverage score (uniform over sizes), bootstrap SE."""

    without_replacement: bool = True
    sizes: str = "leverage"
    bootstrap: int = 100

    def __post_init__(self) -> None:
        check_int(self.bootstrap, "bootstrap", 2)
        check_choice(self.sizes, "sizes", SIZE_RULES)
        check_sampler_options(self, ("paired", "without_replacement", "reuse_prefix"))

    def check(self, problem: Problem) -> None:
        f = problem.n_units
        needed = minimum_samples(f, self.paired)
        if self.samples < needed:
            raise ValueError(
                f"leverage_shap: samples={self.samples} is too few for {f} features ({f} units at this granularity): "
                f"the constrained regression needs {f - 1} independent sampled coalitions"
                f"{paired_note(f, self.paired)}; use samples >= {needed}")
        check_baseline_for(problem, self.baseline)

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        value = PerturbationValue(problem, self.baseline, self.batch_size, self.reuse_prefix, progress,
                                  self.memory_budget)
        estimate, stderr, rank = leverage_shap(value, problem.n_units, self.samples, np.random.default_rng(self.seed),
                                               self.paired, self.bootstrap, self.sizes, self.without_replacement)
        return sampler_output(value, problem, estimate, {"stderr": stderr, "rank": rank})
