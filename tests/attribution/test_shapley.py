"""Shapley samplers against exact Shapley values computed by enumerating all coalitions (<= 10 features)."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.attribution import PerturbationValue, attribute
from workbench.attribution.methods.kernel_shap import (
    kernel_shap,
    kernel_size_distribution,
)
from workbench.attribution.methods.shapley import permutation_shapley
from workbench.attribution.problem import Problem, check_prompt
from workbench.attribution.targets import check_target, resolve
from workbench.attribution.units import build_units

from .exact import all_coalitions, exact_shapley

F = 8
_rng = np.random.default_rng(123)
W1, W2 = _rng.normal(size=F), _rng.normal(size=F)


def game(masks: np.ndarray) -> np.ndarray:
    """A nonlinear 8-player game with two rows (interactions of every order)."""
    z = np.asarray(masks, dtype=float)
    first = np.tanh(z @ W1 - 1) + 0.5 * z[:, 0] * z[:, 1] * z[:, 2]
    second = np.sin(z @ W2) + 0.3 * (z @ W2) ** 2
    return np.stack([first, second], 1)


def pairwise(masks: np.ndarray) -> np.ndarray:
    """A game with interactions of order <= 2: v(z) = a . z + z^T B z (B upper triangular)."""
    z = np.asarray(masks, dtype=float)
    b = np.triu(np.outer(W1, W2), 1)
    return (z @ W1 + np.einsum("ki,ij,kj->k", z, b, z))[:, None]


def test_exact_reference_on_hand_computed_games():
    unanimity = lambda m: (m[:, 0] & m[:, 1]).astype(float)[:, None]
    np.testing.assert_allclose(exact_shapley(unanimity, 4), [[0.5, 0.5, 0, 0]], atol=1e-15)
    three = lambda m: m[:, :3].all(1).astype(float)[:, None]
    np.testing.assert_allclose(exact_shapley(three, 3), [[1 / 3] * 3], atol=1e-15)
    # efficiency: the values sum to v(all) - v(empty)
    phi = exact_shapley(game, F)
    ends = game(np.array([[False] * F, [True] * F]))
    np.testing.assert_allclose(phi.sum(1), ends[1] - ends[0], atol=1e-12)


def test_antithetic_pairs_are_exact_for_pairwise_games():
    # a permutation and its reverse give player i the predecessors P and (all - P - i): their mean marginal
    # contribution a_i + (1/2) sum_j b_ij is the Shapley value of any game of order <= 2
    exact = exact_shapley(pairwise, F)
    est, se = permutation_shapley(pairwise, F, 4, np.random.default_rng(0), antithetic=True)
    np.testing.assert_allclose(est, exact, atol=1e-12)
    assert np.abs(se).max() < 1e-12
    plain, plain_se = permutation_shapley(pairwise, F, 4, np.random.default_rng(0), antithetic=False)
    assert np.abs(plain - exact).max() > 1e-3 and plain_se.max() > 1e-3


@pytest.mark.parametrize("antithetic", [True, False])
def test_permutation_sampling_converges(antithetic):
    exact = exact_shapley(game, F)
    errors = []
    for n in (16, 256, 4096):
        est, se = permutation_shapley(game, F, n, np.random.default_rng(1), antithetic)
        errors.append(np.abs(est - exact).max())
        assert np.all(np.abs(est - exact) <= 5 * se + 1e-12)
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 0.02


def test_kernel_shap_converges():
    exact = exact_shapley(game, F)
    errors = []
    for n in (32, 512, 8192):
        est, se, rank = kernel_shap(game, F, n, np.random.default_rng(2), paired=True, bootstrap=50)
        assert rank == F - 1
        errors.append(np.abs(est - exact).max())
        assert np.all(np.abs(est - exact) <= 5 * se + 1e-12)
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 0.03
    np.testing.assert_allclose(est.sum(1), exact.sum(1), atol=1e-12)  # efficiency holds exactly


def test_kernel_size_distribution():
    # Shapley kernel summed over the C(F, s) coalitions of each size: proportional to (F - 1) / (s (F - s))
    p = kernel_size_distribution(4)
    np.testing.assert_allclose(p, np.array([1 / 3, 1 / 4, 1 / 3]) / (11 / 12), rtol=1e-12)


def _spread(estimates: list[np.ndarray], errors: list[np.ndarray]) -> np.ndarray:
    """Ratio of the reported standard error (mean over runs) to the observed spread of the estimates."""
    return np.mean(errors, 0) / np.std(estimates, 0, ddof=1)


def test_permutation_standard_error_is_calibrated():
    runs = [permutation_shapley(game, F, 16, np.random.default_rng(seed)) for seed in range(300)]
    ratio = _spread([r[0] for r in runs], [r[1] for r in runs])
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio


def test_kernel_shap_standard_error_is_calibrated():
    runs = [kernel_shap(game, F, 64, np.random.default_rng(seed), bootstrap=40) for seed in range(150)]
    ratio = _spread([r[0] for r in runs], [r[1] for r in runs])
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio


def test_rank_deficient_sample_warns():
    # 3 players, 2 sampled pairs: with seed 1 both pairs are the same split, so one regression row is missing
    count = lambda m: m.sum(1, keepdims=True).astype(float)
    with pytest.warns(UserWarning, match="span only rank 1 < features - 1 = 2"):
        _, _, rank = kernel_shap(count, 3, 4, np.random.default_rng(1))
    assert rank == 1


def test_single_feature():
    one = lambda m: np.where(m[:, :1], 2.0, -1.0)
    est, se, _ = kernel_shap(one, 1, 5, np.random.default_rng(0))
    assert est.tolist() == [[3.0]] and se.tolist() == [[0.0]]


# ---- end to end on a tiny model: players are the prompt's tokens, v(S) their log-probabilities --------------
PROMPT, TARGET = "A cat sat", " up"  # 9 byte tokens


@pytest.fixture(scope="module")
def exact_tiny(llama):
    text = check_prompt(llama, PROMPT)
    units = build_units("token", text.ids, text.offsets, text.data)
    problem = Problem(llama, text, units, resolve(llama, check_target(llama, TARGET), text.ids))
    value = PerturbationValue(problem, "pad", batch_size=128)
    return exact_shapley(value, len(units))  # 512 coalitions


@pytest.mark.parametrize("method,small,large", [("shapley", {"permutations": 8}, {"permutations": 1000}),
                                                ("kernel_shap", {"samples": 24}, {"samples": 4000})])
def test_samplers_converge_on_a_tiny_model(llama, exact_tiny, method, small, large):
    rough = attribute(llama, PROMPT, TARGET, method=method, batch_size=128, progress=False, **small)
    fine = attribute(llama, PROMPT, TARGET, method=method, batch_size=128, progress=False, **large)
    assert fine.matrix.shape == exact_tiny.shape == (3, 9)
    rough_error, fine_error = np.abs(rough.matrix - exact_tiny), np.abs(fine.matrix - exact_tiny)
    assert fine_error.max() < rough_error.max() / 4
    assert np.all(fine_error <= 5 * fine.stderr() + 1e-6)
    assert fine.cost.evaluations <= len(all_coalitions(9))  # the memo caps evaluations at 2^9
