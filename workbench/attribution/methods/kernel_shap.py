"""KernelSHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions").

Shapley values are the solution of a weighted least-squares problem over coalitions z in {0, 1}^F,
    min_phi  sum_z pi(z) (v(z) - v(0) - z . phi)^2   subject to   sum_i phi_i = v(1) - v(0),
with the Shapley kernel pi(z) = (F - 1) / (C(F, |z|) |z| (F - |z|)) over 0 < |z| < F. As in the paper's
sampling variant, coalitions are drawn from the normalized kernel (a size s with probability proportional to
(F - 1) / (s (F - s)), then a uniform subset of that size) and the regression is solved with equal weights;
with `paired` sampling every drawn coalition is followed by its complement (Covert & Lee 2021, "Improving
KernelSHAP"). The constraint is imposed by eliminating the last player; the least-squares solve is
numpy's lstsq (minimum-norm if the sampled design is rank-deficient, flagged in `extras["rank"]`).

Standard error: bootstrap over the sampled draws (pairs when paired), `bootstrap` re-solves on resampled
draws (resamples whose design loses rank are drawn again); no extra model evaluations.

Minimum samples: the regression has F - 1 unknowns after elimination, so at least F + 1 coalitions are needed,
the empty and full ones plus F - 1 sampled (`samples >= F - 1`); a coalition and its complement give the same
regression row up to sign, so with `paired` sampling `samples >= 2 (F - 1)`. Repeated coalitions are run once
(the value function memoizes them).

Coalitions run `batch_size` at a time, fewer when a batch would exceed `memory_budget` bytes (default and
estimate: workbench.attribution.chunking).
"""
from __future__ import annotations

import warnings
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


def kernel_size_distribution(f: int) -> np.ndarray:
    """Probability of each coalition size s = 1..F-1 under the normalized Shapley kernel."""
    s = np.arange(1, f)
    weights = (f - 1) / (s * (f - s))
    return weights / weights.sum()


def sample_coalitions(f: int, draws: int, rng: np.random.Generator, paired: bool) -> np.ndarray:
    """[draws * (2 if paired else 1), F] keep-masks drawn from the Shapley kernel (complements interleaved)."""
    sizes = rng.choice(np.arange(1, f), size=draws, p=kernel_size_distribution(f))
    keys = rng.random((draws, f))  # a uniform subset of size s: the s players with the smallest keys
    masks = keys <= np.sort(keys, axis=1)[np.arange(draws), sizes - 1][:, None]
    if paired:
        masks = np.stack([masks, ~masks], axis=1).reshape(-1, f)
    return masks


def solve(z: np.ndarray, y: np.ndarray, total: np.ndarray, weights: np.ndarray | None = None
          ) -> tuple[np.ndarray, int]:
    """Least squares y ~ z @ phi with sum(phi) = total, by eliminating the last player -> (phi [R, F], rank).

    Solved through the (weighted) normal equations, which are only (F - 1) x (F - 1); `weights` are per-row
    multiplicities (the bootstrap's resampling counts)."""
    zf = z.astype(float)
    design = zf[:, :-1] - zf[:, -1:]
    rhs = y - zf[:, -1:] * total[None, :]
    weighted = design if weights is None else design * weights[:, None]
    head, _, rank, _ = np.linalg.lstsq(weighted.T @ design, weighted.T @ rhs, rcond=None)  # [F - 1, R]
    phi = np.concatenate([head, (total - head.sum(0))[None, :]], axis=0)
    return phi.T, int(rank)


def kernel_shap(value: ValueFn, n_features: int, samples: int, rng: np.random.Generator, paired: bool = True,
                bootstrap: int = 100) -> tuple[np.ndarray, np.ndarray, int]:
    """KernelSHAP estimates of `value` (keep-masks [M, F] -> [M, R]) -> (estimates [R, F], std errors [R, F],
    rank of the regression design)."""
    f = n_features
    ends = value(np.stack([np.zeros(f, dtype=bool), np.ones(f, dtype=bool)]))
    empty, full = ends[0], ends[1]
    if f == 1:
        return (full - empty)[:, None], np.zeros((len(full), 1)), 0
    draws = -(-samples // 2) if paired else samples
    z = sample_coalitions(f, draws, rng, paired)
    y = value(z) - empty[None, :]
    total = full - empty
    estimate, rank = solve(z, y, total)
    if rank < f - 1:
        warnings.warn(f"KernelSHAP: the {len(z)} sampled coalitions span only rank {rank} < features - 1 = {f - 1}; "
                      "the estimate is not identified (minimum-norm solution): increase samples", stacklevel=3)
    group = 2 if paired else 1
    reps = []
    for _ in range(4 * bootstrap):  # resamples that lose rank cannot identify phi and are drawn again
        counts = rng.multinomial(draws, np.full(draws, 1.0 / draws)).astype(float)
        rep, rep_rank = solve(z, y, total, np.repeat(counts, group))
        if rep_rank == rank:
            reps.append(rep)
            if len(reps) == bootstrap:
                break
    stderr = np.std(np.stack(reps), axis=0, ddof=1) if len(reps) > 1 else np.full_like(estimate, np.nan)
    return estimate, stderr, rank


def minimum_samples(f: int, paired: bool) -> int:
    """Fewest sampled coalitions that can identify F values: F - 1 independent rows after eliminating one
    player; a coalition and its complement give the same row up to sign, so paired sampling needs F - 1 pairs."""
    if f <= 1:
        return 1
    return 2 * (f - 1) if paired else f - 1


def paired_note(f: int, paired: bool) -> str:
    return (f"; with paired=True a coalition and its complement count once, so {f - 1} pairs = {2 * (f - 1)} samples"
            if paired and f > 1 else "")


@dataclass
class CoalitionSampler(Attributor):
    """Options shared by the coalition samplers here (kernel_shap, leverage_shap, regression_adjusted_shap)."""

    level = "unit"

    samples: int = 64
    paired: bool = True
    baseline: str | int = "pad"
    batch_size: int = 16
    seed: int = 0
    reuse_prefix: bool = True
    memory_budget: int | None = None


@register_method("kernel_shap")
@dataclass
class KernelShap(CoalitionSampler):
    """KernelSHAP over units with `samples` sampled coalitions and a bootstrap standard error."""

    bootstrap: int = 100

    def __post_init__(self) -> None:
        check_int(self.bootstrap, "bootstrap", 2)
        check_sampler_options(self, ("paired", "reuse_prefix"))

    def check(self, problem: Problem) -> None:
        f = problem.n_units
        needed = minimum_samples(f, self.paired)
        if self.samples < needed:
            raise ValueError(
                f"kernel_shap: samples={self.samples} is too few for {f} features ({f} units at this granularity): "
                f"KernelSHAP solves a least-squares problem and needs at least features + 1 = {f + 1} coalitions "
                f"(the empty and full ones plus {f - 1} sampled){paired_note(f, self.paired)}; use samples >= {needed}"
            )
        check_baseline_for(problem, self.baseline)

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        value = PerturbationValue(problem, self.baseline, self.batch_size, self.reuse_prefix, progress,
                                  self.memory_budget)
        rng = np.random.default_rng(self.seed)
        estimate, stderr, rank = kernel_shap(value, problem.n_units, self.samples, rng, self.paired, self.bootstrap)
        return sampler_output(value, problem, estimate, {"stderr": stderr, "rank": rank})


def check_sampler_options(method: Attributor, flags: tuple[str, ...]) -> None:
    """The options every coalition sampler shares: `samples`, True/False `flags`, baseline, and the perturbation
    options (memory budget, batch size, seed, reuse_prefix), each error naming the option."""
    check_int(method.samples, "samples", 1)
    check_flags(method, flags)
    method.baseline = check_baseline(method.baseline)
    check_perturbation_options(method)


def sampler_output(value: PerturbationValue, problem: Problem, estimate: np.ndarray, extras: dict) -> MethodOutput:
    """MethodOutput of a coalition sampler: the estimate, f(x) and v(empty) (memoized: no extra evaluations),
    the coalitions run and the KV-cache reuse."""
    ends = value(np.stack([np.ones(problem.n_units, dtype=bool), np.zeros(problem.n_units, dtype=bool)]))
    extras = {**extras, "empty_values": ends[1], "coalitions": value.evaluations, "kv_reused_tokens": value.reused_tokens}
    return MethodOutput(estimate, ends[0], extras, evaluations=value.evaluations)
