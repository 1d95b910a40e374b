"""Leverage SHAP (Musco & Witter 2025) against exact Shapley values by enumeration."""
from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.attribution import attribute
from workbench.attribution.methods.leverage_shap import (
    allocate,
    design,
    kernel_weight,
    leverage_shap,
)

from .exact import all_coalitions, exact_shapley
from .test_shapley import PROMPT, TARGET, exact_tiny  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """The estimators solve many small least-squares problems: one BLAS thread is fastest (and the machine is
    shared); threadpoolctl is optional."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


F = 10
_rng = np.random.default_rng(7)
W1, W2 = _rng.normal(size=F), _rng.normal(size=F)


def game(masks: np.ndarray) -> np.ndarray:
    """A nonlinear 10-player game with two rows (interactions of every order)."""
    z = np.asarray(masks, dtype=float)
    return np.stack([np.tanh(z @ W1 - 1) + 0.5 * z[:, 0] * z[:, 1] * z[:, 2], np.sin(z @ W2)], 1)


def additive(masks: np.ndarray) -> np.ndarray:
    return (np.asarray(masks, dtype=float) @ W1 + 3.0)[:, None]


def test_water_filling_allocation_by_hand():
    # F = 8, paired, 20 pairs. Groups (pair capacity, share): (1,7): 8, 1; (2,6): 28, 1; (3,5): 56, 1; (4): 35, 1/2.
    # Level t with 3 t + t / 2 = 20: t = 5.71 -> floors 5, 5, 5, 2 (17), the 3 left go to the largest fractional
    # parts: 0.86 (middle), then two of the 0.71s
    units = [g.units for g in allocate(8, 40, paired=True)]
    assert sum(units) == 20 and units[3] == 3 and sorted(units[:3]) == [5, 6, 6]
    # 30 pairs: (1,7) saturates at 8, then 2 t + t / 2 = 22: t = 8.8 -> 8, 8, 8, 4 + 2 -> (1,7) is enumerated
    gs = allocate(8, 60, paired=True)
    assert [g.units for g in gs] == [8, 9, 9, 4] and [g.enumerated for g in gs] == [True, False, False, False]
    # kernel sizes: share proportional to 1 / (s (F - s)): size 1 gets more than size 4
    kernel = allocate(8, 40, paired=True, sizes="kernel")
    assert kernel[0].units == 8 and kernel[0].units > kernel[2].units
    # unpaired: one group per size, the budget spent exactly
    assert sum(g.units for g in allocate(8, 50, paired=False)) == 50


def test_design_is_distinct_paired_and_weighted():
    d = design(F, 200, np.random.default_rng(0))
    assert len(d.masks) == 200
    assert len({m.tobytes() for m in d.masks}) == 200  # without replacement
    np.testing.assert_array_equal(d.masks[0::2], ~d.masks[1::2])  # complements interleaved
    # Horvitz-Thompson: the weights of each size add up to the kernel's total mass at that size
    for s in range(1, F):
        rows = d.stratum == s
        assert d.weight[rows].sum() == pytest.approx(float(kernel_weight(F, s)) * math.comb(F, s))


def test_exact_when_the_budget_covers_every_coalition():
    exact = exact_shapley(game, F)
    est, se, rank = leverage_shap(game, F, 2 ** F - 2, np.random.default_rng(0))
    np.testing.assert_allclose(est, exact, atol=1e-10)
    assert rank == F - 1 and np.abs(se).max() == 0  # every size enumerated: nothing to resample


def test_additive_game_is_exact_from_few_samples():
    exact = exact_shapley(additive, F)
    est, _, rank = leverage_shap(additive, F, 4 * (F - 1), np.random.default_rng(3))
    assert rank == F - 1
    np.testing.assert_allclose(est, exact, atol=1e-10)


@pytest.mark.parametrize("without_replacement", [True, False])
def test_many_players(without_replacement):
    # C(80, 40) ~ 1e23 overflows int64: the design's weights must still be floats (a 60-word prompt hit this)
    f = 80
    w = np.random.default_rng(5).normal(size=f)
    est, _, rank = leverage_shap(lambda m: (np.asarray(m, dtype=float) @ w)[:, None], f, 400,
                                 np.random.default_rng(0), bootstrap=2, without_replacement=without_replacement)
    assert rank == f - 1
    np.testing.assert_allclose(est[0], w, atol=1e-8)


@pytest.mark.parametrize("without_replacement", [True, False])
def test_converges_to_exact(without_replacement):
    exact = exact_shapley(game, F)
    errors = []
    for n in (40, 200, 800):
        runs = [leverage_shap(game, F, n, np.random.default_rng(seed), bootstrap=20,
                              without_replacement=without_replacement) for seed in range(8)]
        errors.append(np.mean([np.linalg.norm(r[0] - exact) for r in runs]))
        est, se, _ = runs[0]
        assert np.all(np.abs(est - exact) <= 5 * se + 1e-9)
        np.testing.assert_allclose(est.sum(1), exact.sum(1), atol=1e-10)  # efficiency holds exactly
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 0.25 * errors[0]


def test_standard_error_is_calibrated():
    runs = [leverage_shap(game, F, 60, np.random.default_rng(seed), bootstrap=40) for seed in range(120)]
    ratio = np.mean([r[1] for r in runs], 0) / np.std([r[0] for r in runs], 0, ddof=1)
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio


def test_exact_on_a_tiny_model(llama, exact_tiny):  # noqa: F811
    # 9 byte tokens: 2^9 - 2 = 510 samples enumerate every proper coalition
    a = attribute(llama, PROMPT, TARGET, method="leverage_shap", samples=510, batch_size=128, progress=False)
    np.testing.assert_allclose(a.matrix, exact_tiny, atol=1e-5)
    assert a.cost.evaluations == len(all_coalitions(9))


def test_bad_input(llama):
    with pytest.raises(ValueError, match=r"samples=8 is too few for 9 features.*samples >= 16"):
        attribute(llama, PROMPT, TARGET, method="leverage_shap", samples=8, progress=False)
    with pytest.raises(ValueError, match="sizes must be one of"):
        attribute(llama, PROMPT, TARGET, method="leverage_shap", sizes="random", progress=False)
    with pytest.raises(ValueError, match="samples must be an int >= 1"):
        attribute(llama, PROMPT, TARGET, method="leverage_shap", samples=0, progress=False)
