"""The attribution benchmarks' own logic: the error metric, exact Shapley by enumeration, evaluation counting,
threshold interpolation, and that the table-backed samplers reproduce what the real methods compute.

Expected values are worked out by hand in the comments (or come from the package's `attribute`, a different code
path than the benchmark's table replay). captum / shap parts are skipped when those packages are missing.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.attribution import PerturbationValue, attribute
from workbench.attribution.rebuild import problem_from
from workbench.models.tiny import tiny_lm

from .loader import load_benchmark

B = load_benchmark("attribution_shapley")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_relative_error_by_hand():
    # ||(1,2,2) - (1,2,3)|| / ||(1,2,3)|| = 1 / sqrt(14)
    assert B.relative_error(np.array([1.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(1 / math.sqrt(14))
    assert B.relative_error(np.array([2.0, 0.0]), np.array([1.0, 0.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="all zero"):
        B.relative_error(np.ones(2), np.zeros(2))
    with pytest.raises(ValueError, match="same shape"):
        B.relative_error(np.ones(2), np.ones(3))


def test_exact_shapley_by_hand():
    # table order: index = sum of 2^i over kept players i -> [v(), v({0}), v({1}), v({0,1})]
    # phi_0 = 1/2 (v({0}) - v()) + 1/2 (v({0,1}) - v({1})) = 1/2 * 1 + 1/2 * 3 = 2; phi_1 = 1/2 * 2 + 1/2 * 4 = 3
    assert np.allclose(B.exact_shapley(np.array([0.0, 1.0, 2.0, 5.0]), 2), [2.0, 3.0])
    # majority of 3 (v = 1 when at least 2 players): symmetric, efficiency -> 1/3 each
    masks = B.all_masks(3)
    assert np.allclose(B.exact_shapley((masks.sum(1) >= 2).astype(float), 3), [1 / 3] * 3)
    # additive game: phi_i = w_i exactly
    w = np.array([0.5, -1.0, 2.0, 0.25])
    assert np.allclose(B.exact_shapley(B.all_masks(4) @ w + 7.0, 4), w)


def test_table_value_counts_rows_distinct_and_calls():
    table = np.array([0.0, 1.0, 2.0, 5.0])
    v = B.TableValue(table, 2)
    out = v(np.array([[1, 0], [1, 0], [0, 1]], dtype=bool))
    assert out.tolist() == [1.0, 1.0, 2.0]
    assert (v.rows, v.distinct, v.calls) == (3, 2, 1)
    out = v(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))  # captum hands float tensors; > 0.5 means kept
    assert out.tolist() == [5.0, 0.0]
    assert (v.rows, v.distinct, v.calls) == (5, 4, 2)
    with pytest.raises(ValueError, match="2\\^F"):
        B.TableValue(np.zeros(3), 2)


def test_evaluations_to_reach_interpolates_log_log():
    # between (10, 0.2) and (40, 0.05): log-error falls by ln 4 over ln 4 of log-evals; 0.1 is halfway -> 10 * 2
    assert B.evaluations_to_reach([(40, 0.05), (10, 0.2)], 0.1) == pytest.approx(20.0)
    assert B.evaluations_to_reach([(10, 0.05), (40, 0.01)], 0.1) == 10.0
    assert B.evaluations_to_reach([(10, 0.5), (40, 0.2)], 0.1) is None


@pytest.fixture(scope="module")
def tiny_problem():
    lm = tiny_lm("llama", seed=0)
    prompt, target = "the cat sat on a mat", " ok"
    a = attribute(lm, prompt, target, method="occlusion", granularity="word", progress=False)
    problem = problem_from(lm, a)
    table = PerturbationValue(problem, "pad", 16)(B.all_masks(problem.n_units)).sum(1)
    return lm, prompt, target, problem, table


def test_forward_counter_counts_calls_and_rows(tiny_problem):
    lm = tiny_problem[0]
    with B.ForwardCounter(lm.model) as counter:
        lm.forward(torch.zeros(3, 4, dtype=torch.long))
        lm.model.forward(input_ids=torch.zeros(1, 2, dtype=torch.long))  # direct calls, as Captum makes them
    assert (counter.calls, counter.rows) == (2, 4)
    lm.forward(torch.zeros(1, 2, dtype=torch.long))
    assert counter.calls == 2  # the wrapper is removed on exit
    assert "forward" not in vars(lm.model)


def test_table_replay_matches_the_real_methods(tiny_problem):
    lm, prompt, target, problem, table = tiny_problem
    f = problem.n_units
    assert f == 6
    exact = B.exact_shapley(table, f)
    # efficiency: the values sum to v(all) - v(none)
    assert exact.sum() == pytest.approx(table[-1] - table[0], abs=1e-9)
    for method, option, budget, sampler in (("shapley", "permutations", 8, B.ours_shapley),
                                            ("kernel_shap", "samples", 32, B.ours_kernel)):
        real = attribute(lm, prompt, target, method=method, granularity="word", progress=False, seed=3,
                         **{option: budget})
        value = B.TableValue(table, f)
        replay = sampler(value, f, budget, 3)
        assert np.allclose(replay, real.matrix.sum(0), atol=1e-4)
        assert value.distinct == real.cost.evaluations  # ours memoize: distinct coalitions are the model inputs


# estimators linear in the game only: the ridge surrogates (pairwise, third order) choose their penalty per target
# token, so on a 3-token target the sum of their per-token estimates is not their estimate of the summed game
@pytest.mark.parametrize("name", ["ours_leverage_shap", "ours_leverage_shap_iid", "ours_regression_linear"])
def test_table_replay_matches_the_new_estimators(tiny_problem, name):
    lm, prompt, target, problem, table = tiny_problem
    f = problem.n_units
    method, option, options = B.OURS[name]
    budget = 40  # above every method's minimum for 6 words (regression_adjusted_shap with 5 folds: 30)
    real = attribute(lm, prompt, target, method=method, granularity="word", progress=False, seed=3,
                     **{option: budget}, **options)
    value = B.TableValue(table, f)
    replay = B.METHODS[name][0](value, f, budget, 3)
    assert np.allclose(replay, real.matrix.sum(0), atol=1e-4)
    assert value.distinct == real.cost.evaluations


def test_unexplained_by_hand():
    f = 4
    masks = B.all_masks(f).astype(float)
    additive = masks @ np.array([1.0, -2.0, 0.5, 3.0]) + 1.0
    assert B.unexplained(additive, f) == pytest.approx({"linear": 0.0, "pairwise": 0.0, "third_order": 0.0}, abs=1e-12)
    pair = additive + masks[:, 0] * masks[:, 1]
    u = B.unexplained(pair, f)
    assert u["linear"] > 0.01 and u["pairwise"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow  # importing shap (numba, llvmlite) takes several seconds
def test_shap_kernel_enumerates_and_counts():
    pytest.importorskip("shap")
    rng = np.random.default_rng(0)
    f = 4
    table = rng.normal(size=2 ** f)
    exact = B.exact_shapley(table, f)
    # nsamples = 2^F - 2 covers every proper non-empty coalition: shap's KernelSHAP is then exact
    value = B.TableValue(table, f)
    assert B.relative_error(B.shap_kernel(value, f, 2 ** f - 2, 0), exact) < 1e-8
    assert value.rows >= 2 ** f - 2


@pytest.mark.slow  # importing shap (numba, llvmlite) takes several seconds
def test_shap_auto_is_exact_up_to_ten_features():
    pytest.importorskip("shap")
    rng = np.random.default_rng(1)
    f = 5
    table = rng.normal(size=2 ** f)
    value = B.TableValue(table, f)
    # shap.Explainer picks ExactExplainer here, whatever the budget: every coalition, once
    assert B.relative_error(B.shap_auto(value, f, 11, 0), B.exact_shapley(table, f)) < 1e-8
    assert value.distinct == 2 ** f


def test_captum_shapley_sampling_counts():
    pytest.importorskip("captum")
    rng = np.random.default_rng(0)
    f = 4
    table = rng.normal(size=2 ** f)
    value = B.TableValue(table, f)
    est = B.captum_svs(value, f, 3, 0)
    # one evaluation of the unperturbed input, then F per sampled permutation: 1 + 3 * 4 rows
    assert value.rows == 13
    # every permutation's marginals telescope to v(all) - v(none)
    assert est.sum() == pytest.approx(table[-1] - table[0], abs=1e-6)
