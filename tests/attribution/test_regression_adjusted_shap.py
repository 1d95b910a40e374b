"""Regression-adjusted Monte Carlo Shapley values against exact Shapley values by enumeration."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.attribution import attribute
from workbench.attribution.methods.regression_adjusted_shap import (
    features,
    minimum_samples,
    regression_adjusted_shap,
    surrogate_full,
    surrogate_shapley,
)

from .exact import all_coalitions, exact_shapley
from .test_leverage_shap import W1, W2, F, additive, game
from .test_shapley import PROMPT, TARGET, exact_tiny  # noqa: F401  (fixture)


def pairwise(masks: np.ndarray) -> np.ndarray:
    """A game with interactions of order <= 2: v(z) = a . z + z^T B z + 1 (B upper triangular)."""
    z = np.asarray(masks, dtype=float)
    b = np.triu(np.outer(W1, W2), 1)
    return (z @ W1 + np.einsum("ki,ij,kj->k", z, b, z) + 1.0)[:, None]


@pytest.mark.parametrize("surrogate", ["linear", "pairwise", "third_order"])
def test_surrogate_shapley_matches_enumeration(surrogate):
    rng = np.random.default_rng(0)
    f = 6
    coef = rng.normal(size=features(all_coalitions(f)[:1], surrogate).shape[1])

    def g(m):  # the surrogate game; its size constants (the first F - 1 columns) are 0 at the empty and full sets
        x = features(m, surrogate)
        ends = (m.sum(1) == 0) | (m.sum(1) == f)
        return (x @ coef - ends * (x[:, :f - 1] @ coef[:f - 1]))[:, None]

    np.testing.assert_allclose(surrogate_shapley(coef, f, surrogate), exact_shapley(g, f)[0], atol=1e-12)
    assert surrogate_full(coef, f, surrogate) == pytest.approx(g(np.ones((1, f), dtype=bool))[0, 0])


def cubic(masks: np.ndarray) -> np.ndarray:
    """A game of order 3: the pairwise game plus a few triple products."""
    z = np.asarray(masks, dtype=float)
    return pairwise(masks) + (0.7 * z[:, 0] * z[:, 1] * z[:, 2] - 1.2 * z[:, 3] * z[:, 5] * z[:, 9])[:, None]


def test_third_order_game_is_recovered_exactly():
    # 9 size constants + 10 + 45 + 120 coefficients span 181 dimensions on the proper coalitions (3 identities:
    # sums of the z_i, z_i z_j, z_i z_j z_k are functions of the size); 800 samples determine every fold's fit
    exact = exact_shapley(cubic, F)
    est = regression_adjusted_shap(cubic, F, 800, np.random.default_rng(4), "third_order", folds=2)
    np.testing.assert_allclose(est, exact, atol=1e-7)
    pair = regression_adjusted_shap(cubic, F, 800, np.random.default_rng(4), "pairwise", folds=2)
    assert np.abs(pair - exact).max() > 1e-3


def test_pairwise_game_is_recovered_exactly():
    exact = exact_shapley(pairwise, F)
    est = regression_adjusted_shap(pairwise, F, 200, np.random.default_rng(1), "pairwise", folds=2)
    np.testing.assert_allclose(est, exact, atol=1e-8)
    other = regression_adjusted_shap(game, F, 200, np.random.default_rng(1), "pairwise", folds=2)
    assert np.abs(other - exact_shapley(game, F)).max() > 1e-3  # a game of higher order leaves a residual


@pytest.mark.parametrize("surrogate", ["linear", "pairwise"])
def test_additive_game_is_exact(surrogate):
    est = regression_adjusted_shap(additive, F, 60, np.random.default_rng(2), surrogate, folds=2)
    np.testing.assert_allclose(est, exact_shapley(additive, F), atol=1e-8)


@pytest.mark.parametrize("surrogate", ["none", "linear", "pairwise", "trees"])
def test_exact_when_every_coalition_is_sampled(surrogate):
    est = regression_adjusted_shap(game, F, 2 ** F - 2, np.random.default_rng(0), surrogate, folds=3)
    np.testing.assert_allclose(est, exact_shapley(game, F), atol=1e-9)


@pytest.mark.parametrize("surrogate", ["none", "pairwise", "trees"])
def test_converges_and_is_nearly_unbiased(surrogate):
    exact = exact_shapley(game, F)
    errors = []
    for n, seeds in ((40, 30), (160, 6), (640, 6)):
        runs = np.stack([regression_adjusted_shap(game, F, n, np.random.default_rng(seed), surrogate, folds=2)
                         for seed in range(seeds)])
        errors.append(np.linalg.norm(runs - exact, axis=(1, 2)).mean())
        if n == 40:  # the mean over seeds is within a few standard errors of the exact values
            bias = np.abs(runs.mean(0) - exact)
            assert np.all(bias <= 4 * runs.std(0, ddof=1) / np.sqrt(len(runs)) + 1e-9), bias
    assert errors[2] < errors[1] < errors[0]


def branching(masks: np.ndarray) -> np.ndarray:
    """A game of high order that a few shallow trees describe: payoffs that switch on and off with the presence
    of players 0, 1 and 2, plus a small additive part."""
    z = np.asarray(masks, dtype=bool)
    both = z[:, 0] & z[:, 1]
    return (3.0 * both - 2.0 * (z[:, 2] & ~z[:, 0]) + 1.5 * (both & ~z[:, 2]) + 0.1 * (z @ W1))[:, None]


def test_tree_surrogate_fits_a_tree_game():
    exact = exact_shapley(branching, F)
    err = {s: np.mean([np.linalg.norm(regression_adjusted_shap(branching, F, 120, np.random.default_rng(seed), s,
                                                               folds=2) - exact) for seed in range(4)])
           for s in ("linear", "third_order", "trees")}
    assert err["trees"] < 0.4 * min(err["linear"], err["third_order"]), err


def test_minimum_samples():
    # F = 10, paired: groups (1,9) (2,8) (3,7) (4,6) and (5) at half share; 2 folds need >= 2 pairs in each.
    # 14 pairs: level 14 / 4.5 = 3.11 -> floors 3, 3, 3, 3, 1, the pair left goes to the middle (fraction 0.56).
    # 13 pairs: level 2.89 -> floors 2, 2, 2, 2, 1, the 4 left go to the fractions 0.89: the middle keeps 1 pair
    assert minimum_samples(F, 2) == 28
    assert minimum_samples(F, 1) < minimum_samples(F, 2) < minimum_samples(F, 5)
    with pytest.raises(ValueError, match="samples=20 is too few for 10 features with folds=2"):
        regression_adjusted_shap(game, F, 20, np.random.default_rng(0))


def test_bad_input(llama):
    with pytest.raises(ValueError, match=r"samples=10 is too few for 9 features.*folds=2.*samples >= \d+"):
        attribute(llama, PROMPT, TARGET, method="regression_adjusted_shap", samples=10, progress=False)
    with pytest.raises(ValueError, match="surrogate must be one of"):
        attribute(llama, PROMPT, TARGET, method="regression_adjusted_shap", surrogate="quartic", progress=False)
    with pytest.raises(ValueError, match="folds must be an int >= 1"):
        attribute(llama, PROMPT, TARGET, method="regression_adjusted_shap", folds=0, progress=False)


def test_exact_on_a_tiny_model(llama, exact_tiny):  # noqa: F811
    a = attribute(llama, PROMPT, TARGET, method="regression_adjusted_shap", samples=510, batch_size=128,
                  progress=False)
    np.testing.assert_allclose(a.matrix, exact_tiny, atol=1e-5)
    assert a.cost.evaluations == len(all_coalitions(9))
