"""Regression-adjusted Monte Carlo Shapley values (Witter, Liu, Musco et al. 2025, "Regression-adjusted Monte Carlo
Estimators for Shapley Values and Probabilistic Values").

Shapley values are linear in the game: phi(v) = phi(g) + phi(v - g) for any surrogate game g. Fit a g whose
Shapley values are known in closed form to the sampled coalitions, take phi(g) exactly, and estimate only the
residual's Shapley values phi(r), r = v - g, by Monte Carlo; the closer g is to v, the smaller the variance.

Surrogates (`surrogate`), all with one free constant per coalition size 1 .. F-1 (a game that depends only on
|S| and is 0 at the empty and full coalitions has Shapley value 0 for every player, so these constants only
reduce variance):
- "none": g = 0 (plain stratified Monte Carlo);
- "linear": g(S) = sum_{i in S} a_i, phi_i(g) = a_i;
- "pairwise": g(S) = sum_{i in S} a_i + sum_{i<j in S} b_ij, phi_i(g) = a_i + 1/2 sum_{j != i} b_ij;
- "third_order": also sum_{i<j<k in S} c_ijk, each c_ijk adding c_ijk / 3 to phi_i, phi_j, phi_k;
- "trees": gradient-boosted regression trees (boosted_trees: 100 trees of depth 4, learning rate 0.1), whose
  Shapley values are exact sums over their leaves; the paper's best family (it used XGBoost), no size constants.
  The tree settings were chosen among four on this project's LM games (benchmarks/attribution_shapley.py).
Note (measured, see benchmarks/attribution_shapley.py): with paired sampling the Monte Carlo part is already
exact on games of order <= 2 (a coalition and its complement cancel them, as antithetic permutations do), so the
pairwise terms change nothing there; only terms of order >= 3 can reduce the variance.
The fit is weighted ridge regression (rows weighted by the Leverage SHAP regression weight k(z) / p(z)), the
penalty on the pairwise coefficients only, its strength chosen by generalized cross-validation over a fixed grid
(0 included, so an exactly pairwise game is fitted exactly once the sample determines it).

Monte Carlo part: phi_i(r) = sum_{T contains i} w_{|T|-1} r(T) - sum_{S not containing i} w_{|S|} r(S),
w_s = s! (F - s - 1)! / F!. The empty and full coalitions are evaluated, so their terms (r(N) - r(0)) / F are
exact. Per size s, 0 < s < F, the sum over the C(F, s) coalitions equals the stratum mean of
r(S) (1[i in S] / s - 1[i not in S] / (F - s)) (since C(F, s) w_{s-1} = 1 / s and C(F, s) w_s = 1 / (F - s)),
estimated by the mean over the sampled coalitions of that size (exact for a size that is enumerated).

Sampling: the Leverage SHAP design (leverage_shap.design: sizes uniform, paired, stratified without
replacement, sizes that fit the budget enumerated).

Cross-fitting (`folds` = K >= 2): the pairs of every sampled size are split at random into K folds; for fold k,
g_k is fitted on all other rows (the other folds and the enumerated sizes), and the residual's stratum means use
fold k's rows only; the K estimates phi(g_k) + MC_k(v - g_k) are averaged, so every sample is used for both
fitting and estimating, never both in the same term. Simplification, stated: the strata are sampled without
replacement, so fold k's rows are not independent of the rows g_k was fitted on (they exclude them); the
estimator is therefore unbiased only up to this finite-population dependence (it vanishes when few of a size's
coalitions are sampled, and the enumerated sizes are exact for any g). `folds=1` fits and estimates on the same
rows (biased; for comparison only).

Minimum samples: each sampled size needs at least one pair (coalition, unpaired) in every fold, so the Monte
Carlo part is defined: the smallest such budget is computed for F features (`minimum_samples`).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench.attribution.methods.base import (
    MethodOutput,
    check_choice,
    check_int,
)
from workbench.attribution.methods.boosted_trees import fit_boosted_trees
from workbench.attribution.methods.kernel_shap import (
    CoalitionSampler,
    check_sampler_options,
    sampler_output,
)
from workbench.attribution.methods.leverage_shap import Design, allocate, design
from workbench.attribution.methods.registry import register_method
from workbench.attribution.perturb import (
    PerturbationValue,
    check_baseline_for,
)
from workbench.attribution.problem import Problem

ValueFn = Callable[[np.ndarray], np.ndarray]
SURROGATES = ("none", "linear", "pairwise", "third_order", "trees")
RIDGE_GRID = (0.0, 1e-3, 1e-2, 0.1, 1.0, 10.0)


def features(masks: np.ndarray, surrogate: str) -> np.ndarray:
    """Surrogate design [M, P]: one-hot size 1 .. F-1, then z_i (linear, pairwise), then z_i z_j, i < j (pairwise)."""
    z = masks.astype(float)
    f = z.shape[1]
    sizes = z.sum(1).astype(int)
    cols = [(sizes[:, None] == np.arange(1, f)[None, :]).astype(float)]
    if surrogate != "none":
        cols.append(z)
    if surrogate in ("pairwise", "third_order"):
        i, j = np.triu_indices(f, 1)
        cols.append(z[:, i] * z[:, j])
    if surrogate == "third_order":
        a, b, c = triples(f)
        cols.append(z[:, a] * z[:, b] * z[:, c])
    return np.concatenate(cols, axis=1)


def triples(f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (i, j, k), i < j < k, of every triple of F players."""
    t = np.array(list(itertools.combinations(range(f), 3)), dtype=int).reshape(-1, 3)
    return t[:, 0], t[:, 1], t[:, 2]


def surrogate_shapley(coef: np.ndarray, f: int, surrogate: str) -> np.ndarray:
    """Exact Shapley values [F] of the surrogate with coefficients `coef` (layout of `features`; the size
    constants contribute 0)."""
    phi = np.zeros(f)
    if surrogate == "none":
        return phi
    phi += coef[f - 1:2 * f - 1]
    pairs = f * (f - 1) // 2
    if surrogate in ("pairwise", "third_order"):
        b = coef[2 * f - 1:2 * f - 1 + pairs]
        i, j = np.triu_indices(f, 1)
        np.add.at(phi, i, b / 2)
        np.add.at(phi, j, b / 2)
    if surrogate == "third_order":  # a unanimity game on a triple gives 1/3 to each member
        c = coef[2 * f - 1 + pairs:]
        for idx in triples(f):
            np.add.at(phi, idx, c / 3)
    return phi


def surrogate_full(coef: np.ndarray, f: int, surrogate: str) -> float:
    """The surrogate's value at the full coalition (its size constants are 0 at sizes 0 and F)."""
    return 0.0 if surrogate == "none" else float(coef[f - 1:].sum())


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, penalized: np.ndarray) -> np.ndarray:
    """Weighted ridge y ~ x with the penalty on the `penalized` columns, strength by generalized
    cross-validation over RIDGE_GRID (relative to the mean diagonal of x' W x; pseudo-inverses, since the size
    constants and the sums of the products are collinear) -> coefficients [P]."""
    w = w / w.mean()
    xtw = x.T * w[None, :]
    gram = xtw @ x
    scale = max(float(np.trace(gram)) / len(gram), 1e-12)
    best, best_score = None, np.inf
    m = len(y)
    root = np.sqrt(w)
    for alpha in RIDGE_GRID:
        if alpha == 0.0:
            coef, _, rank, _ = np.linalg.lstsq(x * root[:, None], y * root, rcond=None)
            df = float(rank)
        else:
            inv = np.linalg.pinv(gram + alpha * scale * np.diag(penalized.astype(float)), hermitian=True)
            coef = inv @ (xtw @ y)
            df = float(np.einsum("ij,ji->", inv, gram))  # trace of the hat matrix X inv X' W
        rss = float((w * (y - x @ coef) ** 2).sum())
        if rss <= 1e-20 * max(float((w * y ** 2).sum()), 1e-300) and df < m - 0.5:
            return coef  # fits exactly with rows to spare: the game is in the surrogate's class
        score = rss / max(1.0 - df / m, 1e-6) ** 2 if df < m - 1e-6 else np.inf
        if score < best_score:
            best, best_score = coef, score
    if best is None:  # every grid point interpolates: take the strongest penalty
        a = gram + RIDGE_GRID[-1] * scale * np.diag(penalized.astype(float))
        best = np.linalg.pinv(a, hermitian=True) @ (xtw @ y)
    return best


@dataclass
class Surrogate:
    """A fitted surrogate game g, relative to its value at the empty coalition: `values` g(S) - g(empty) at the
    sampled coalitions [M], `shapley` its exact Shapley values [F], `total` g(full) - g(empty)."""

    values: np.ndarray
    shapley: np.ndarray
    total: float


def fit_surrogate(masks: np.ndarray, y: np.ndarray, weight: np.ndarray, train: np.ndarray,
                  surrogate: str) -> Surrogate:
    """Fit `surrogate` to y [M] (the game minus v(empty)) on the rows `train` with the regression weights;
    its values are returned for every row [M]."""
    f = masks.shape[1]
    if not train.any():
        return Surrogate(np.zeros(len(y)), np.zeros(f), 0.0)
    if surrogate == "trees":
        trees = fit_boosted_trees(masks[train], y[train], weight[train])
        ends = trees.predict(np.stack([np.zeros(f, dtype=bool), np.ones(f, dtype=bool)]))
        return Surrogate(trees.predict(masks) - ends[0], trees.shapley(f), float(ends[1] - ends[0]))
    x = features(masks, surrogate)
    penalized = np.zeros(x.shape[1], dtype=bool)
    if surrogate in ("pairwise", "third_order"):
        penalized[2 * f - 1:] = True
    coef = fit(x[train], y[train], weight[train], penalized)
    return Surrogate(x @ coef, surrogate_shapley(coef, f, surrogate), surrogate_full(coef, f, surrogate))


def stratum_term(masks: np.ndarray, r: np.ndarray, f: int) -> np.ndarray:
    """Mean over coalitions of one size s of r(S) (1[i in S] / s - 1[i not in S] / (F - s)) -> [F]."""
    s = int(masks[0].sum())
    z = masks.astype(float)
    return (r[:, None] * (z / s - (1 - z) / (f - s))).mean(0)


def folds_of(d: Design, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold [M] of every row: the draws (pairs) of each sampled size (pair of sizes s, F - s) dealt at random
    into k folds, a pair's two rows together; rows of enumerated sizes get -1."""
    f = d.masks.shape[1]
    fold = np.full(len(d.masks), -1)
    key = np.minimum(d.stratum, f - d.stratum)
    for group in np.unique(key):
        if d.enumerated[int(group)]:
            continue
        rows = np.flatnonzero(key == group)
        units = rng.permutation(np.unique(d.unit[rows]))
        assign = dict(zip(units.tolist(), (np.arange(len(units)) % k).tolist()))
        fold[rows] = [assign[u] for u in d.unit[rows].tolist()]
    return fold


def regression_adjusted_shap(value: ValueFn, n_features: int, samples: int, rng: np.random.Generator,
                             surrogate: str = "pairwise", folds: int = 2, paired: bool = True) -> np.ndarray:
    """Regression-adjusted Monte Carlo estimates of `value` (keep-masks [M, F] -> [M, R]) -> estimates [R, F]."""
    f = n_features
    check_choice(surrogate, "surrogate", SURROGATES)
    check_int(folds, "folds", 1)
    if f > 1 and samples < minimum_samples(f, folds, paired):
        raise ValueError(f"samples={samples} is too few for {f} features with folds={folds}: use samples >= "
                         f"{minimum_samples(f, folds, paired)}")
    ends = value(np.stack([np.zeros(f, dtype=bool), np.ones(f, dtype=bool)]))
    empty, full = ends[0], ends[1]
    if f == 1:
        return (full - empty)[:, None]
    d = design(f, samples, rng, paired)
    y = value(d.masks) - empty[None, :]  # the game relative to v(empty): g has no constant at size 0
    total = full - empty
    fold = folds_of(d, folds, rng) if folds > 1 else np.zeros(len(d.masks), dtype=int)
    sizes = sorted(d.count)
    out = np.zeros((y.shape[1], f))
    for col in range(y.shape[1]):
        estimates = []
        for k in range(folds):
            train = fold != k if folds > 1 else np.ones(len(d.masks), dtype=bool)
            g = fit_surrogate(d.masks, y[:, col], d.weight, train, surrogate)
            r = y[:, col] - g.values
            phi = g.shapley + (total[col] - g.total) / f
            for s in sizes:
                rows = (d.stratum == s) & ((fold == k) | (fold < 0))
                phi += stratum_term(d.masks[rows], r[rows], f)
            estimates.append(phi)
        out[col] = np.mean(estimates, axis=0)
    return out


def minimum_samples(f: int, folds: int, paired: bool = True) -> int:
    """Fewest samples for which every size that is not enumerated gets at least `folds` draws (pairs)."""
    if f <= 1:
        return 1
    step = 2 if paired else 1
    samples = step
    while True:
        gs = allocate(f, samples, paired)
        if all(g.enumerated or g.units >= folds for g in gs):
            return samples
        samples += step


@register_method("regression_adjusted_shap")
@dataclass
class RegressionAdjustedShap(CoalitionSampler):
    """Regression-adjusted Monte Carlo Shapley values over units (surrogate + cross-fitted residual Monte Carlo)."""

    surrogate: str = "pairwise"
    folds: int = 2

    def __post_init__(self) -> None:
        check_int(self.folds, "folds", 1)
        check_choice(self.surrogate, "surrogate", SURROGATES)
        check_sampler_options(self, ("paired", "reuse_prefix"))

    def check(self, problem: Problem) -> None:
        f = problem.n_units
        needed = minimum_samples(f, self.folds, self.paired)
        if self.samples < needed:
            unit = "pairs" if self.paired else "coalitions"
            raise ValueError(
                f"regression_adjusted_shap: samples={self.samples} is too few for {f} features ({f} units at this "
                f"granularity) with folds={self.folds}: every coalition size that is not enumerated needs at least "
                f"{self.folds} sampled {unit} (one per fold); use samples >= {needed}")
        check_baseline_for(problem, self.baseline)

    def run(self, problem: Problem, progress: bool = False) -> MethodOutput:
        value = PerturbationValue(problem, self.baseline, self.batch_size, self.reuse_prefix, progress,
                                  self.memory_budget)
        estimate = regression_adjusted_shap(value, problem.n_units, self.samples, np.random.default_rng(self.seed),
                                            self.surrogate, self.folds, self.paired)
        return sampler_output(value, problem, estimate, {})
