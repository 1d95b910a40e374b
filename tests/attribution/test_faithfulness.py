"""Faithfulness metrics and rank agreement: hand-computed AOPC and curves on a tiny value function, the right
ranking beats the reversed one on the hand-built linear model, soft metrics match their exact expectation,
rank statistics against identical/reversed rankings and scipy."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.stats

from workbench.attribution import TargetFunction, attribute
from workbench.attribution.faithfulness import (
    agreement_table,
    counts_for,
    curves,
    erasure,
    faithfulness,
    rank_agreement,
)

PROMPT = "known!"
Y = 7
TARGET = TargetFunction(lambda logits, ids: logits[:, 0, Y], "", ("logit[Y]",))
W = np.array([4.0, 3.0, 2.0, 1.0])


def linear_value(masks):
    """v(S) = sum of the kept weights, one row."""
    return (np.asarray(masks, dtype=float) @ W)[:, None]


def test_counts_are_ceilings_without_float_roundup():
    assert counts_for([0.1, 0.2, 0.3, 0.5, 1.0], 10) == [1, 2, 3, 5, 10]
    assert counts_for([k / 10 for k in range(1, 11)], 4) == [1, 1, 2, 2, 2, 3, 3, 4, 4, 4]


def test_aopc_matches_a_hand_computation():
    # ranking 0, 2, 3, 1; removing the top 1/2/3/4 units drops v by 4/6/7/10
    out = erasure(linear_value, np.array([[0.4, 0.1, 0.3, 0.2]]), [k / 10 for k in range(1, 11)])
    np.testing.assert_allclose(out["comprehensiveness_curve"][0], [4, 4, 6, 6, 6, 7, 7, 10, 10, 10])
    np.testing.assert_allclose(out["sufficiency_curve"][0], [6, 6, 4, 4, 4, 3, 3, 0, 0, 0])
    assert out["comprehensiveness"][0] == pytest.approx(7.0)
    assert out["sufficiency"][0] == pytest.approx(3.0)
    half = erasure(linear_value, np.array([[0.4, 0.1, 0.3, 0.2]]), [0.5, 1.0])
    assert half["comprehensiveness"][0] == pytest.approx((6 + 10) / 2)


def test_deletion_insertion_curves_by_hand():
    out = curves(linear_value, np.array([[0.4, 0.1, 0.3, 0.2]]))
    np.testing.assert_allclose(out["deletion"][0], [10, 6, 4, 3, 0])
    np.testing.assert_allclose(out["insertion"][0], [0, 4, 6, 7, 10])
    assert out["deletion_auc"][0] == pytest.approx(0.25 * (8 + 5 + 3.5 + 1.5))
    assert out["insertion_auc"][0] == pytest.approx(0.25 * (2 + 5 + 6.5 + 8.5))


def true_attribution(linear):
    """Occlusion with the zero baseline on the linear model gives the exact contributions (known answer)."""
    a = attribute(linear, PROMPT, TARGET, method="occlusion", baseline="zero", progress=False)
    ids = linear.tokenizer.encode(PROMPT)
    np.testing.assert_allclose(a.matrix[0], linear.contribution(ids, Y).numpy(), atol=1e-9)
    return a


def test_right_ranking_is_more_faithful_than_reversed(linear):
    right = true_attribution(linear)
    wrong = dataclasses.replace(right, matrix=-right.matrix)
    kw = {"target": TARGET, "baseline": "zero", "soft_samples": 32}
    good, bad = faithfulness(linear, right, **kw), faithfulness(linear, wrong, **kw)
    assert good.scale == "score"
    assert good.comprehensiveness[0] > bad.comprehensiveness[0]
    assert good.sufficiency[0] < bad.sufficiency[0]
    assert good.soft_comprehensiveness[0] > bad.soft_comprehensiveness[0]
    assert good.soft_sufficiency[0] < bad.soft_sufficiency[0]
    assert good.deletion_auc[0] < bad.deletion_auc[0] and good.insertion_auc[0] > bad.insertion_auc[0]
    # the right ranking's comprehensiveness drop at every fraction is the sum of the largest contributions
    c = np.sort(right.matrix[0])[::-1]
    counts = counts_for(good.fractions, len(c))
    np.testing.assert_allclose(good.comprehensiveness_curve[0], [c[:k].sum() for k in counts], atol=1e-9)
    np.testing.assert_allclose(good.empty, [0.0], atol=1e-12)  # zero baseline: no contribution left
    assert set(good.aggregated()) == set(good.METRICS)


def test_soft_metrics_match_their_exact_expectation(linear):
    a = true_attribution(linear)
    samples = 400
    out = faithfulness(linear, a, TARGET, baseline="zero", soft_samples=samples, seed=3, with_curves=False)
    ids = linear.tokenizer.encode(PROMPT)
    terms = (linear.a[: len(ids), None] * linear.E[ids] * linear.U[:, Y][None]).numpy()  # [n, hidden]
    c = terms.sum(1)
    s = (c - c.min()) / (c.max() - c.min())
    for name, p in (("soft_sufficiency", s), ("soft_comprehensiveness", 1 - s)):
        want = c.sum() - (p * c).sum()  # E[f(x~)] = sum_s p_s c_s for this linear model
        std = np.sqrt((p * (1 - p) * (terms ** 2).sum(1)).sum() / samples)
        assert abs(getattr(out, name)[0] - want) < 5 * std, name
    again = faithfulness(linear, a, TARGET, baseline="zero", soft_samples=samples, seed=3, with_curves=False)
    assert again.soft_sufficiency[0] == out.soft_sufficiency[0]


def test_probability_scale_on_a_tiny_model(llama):
    a = attribute(llama, "The cat sat.", " Yes", method="occlusion", granularity="word", progress=False)
    out = faithfulness(llama, a, soft_samples=2, batch_size=8)
    rows, units = a.matrix.shape
    assert out.scale == "prob" and out.comprehensiveness.shape == (rows,)
    assert out.deletion.shape == (rows, units + 1)
    np.testing.assert_allclose(out.full, np.exp(a.target_values), rtol=1e-4)
    np.testing.assert_allclose(out.deletion[:, 0], out.full, rtol=1e-4)
    np.testing.assert_allclose(out.deletion[:, -1], out.empty, rtol=1e-4)
    np.testing.assert_allclose(out.comprehensiveness_curve[:, -1], out.full - out.empty, rtol=1e-4)
    np.testing.assert_allclose(out.sufficiency_curve[:, -1], 0.0, atol=1e-6)
    d = out.to_dict()
    assert d["method"] == "occlusion" and len(d["comprehensiveness"]) == rows


def test_bad_input_before_work(llama):
    a = attribute(llama, "The cat sat.", " Yes", method="saliency", progress=False)
    with pytest.raises(ValueError, match="fractions"):
        faithfulness(llama, a, fractions=[0.0, 0.5])
    with pytest.raises(ValueError, match="scale"):
        faithfulness(llama, a, scale="logit")
    c = attribute(llama, "The cat sat.", TargetFunction(lambda l, i: l[:, 0, 3]), method="saliency", progress=False)
    with pytest.raises(ValueError, match="scale='prob' needs a token target"):
        faithfulness(llama, c, scale="prob")
    with pytest.raises(ValueError, match="pass the same target again"):
        faithfulness(llama, c)


def test_rank_agreement_identical_and_reversed():
    x = np.array([[0.5, -1.0, 2.0, 0.1, 3.0]])
    same = rank_agreement(x, x, k=2)
    assert same.spearman[0] == pytest.approx(1.0) and same.kendall[0] == pytest.approx(1.0)
    assert same.top_k_overlap[0] == 1.0
    rev = rank_agreement(x, -x, k=2)
    assert rev.spearman[0] == pytest.approx(-1.0) and rev.kendall[0] == pytest.approx(-1.0)
    assert rev.top_k_overlap[0] == 0.0


def test_rank_agreement_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(5, 9)).astype(float)
    b = rng.integers(0, 4, size=(5, 9)).astype(float)
    out = rank_agreement(a, b, k=3)
    for r in range(5):
        assert out.spearman[r] == pytest.approx(scipy.stats.spearmanr(a[r], b[r]).statistic)
        assert out.kendall[r] == pytest.approx(scipy.stats.kendalltau(a[r], b[r]).statistic)  # tau-b
    with pytest.raises(ValueError, match="k must be"):
        rank_agreement(a, b, k=10)
    with pytest.raises(ValueError, match="same rows and sources"):
        rank_agreement(a, b[:, :4])


def test_agreement_table_on_a_real_pair(llama):
    occ = attribute(llama, "The cat sat.", " Yes", method="occlusion", progress=False)
    ixg = attribute(llama, "The cat sat.", " Yes", method="input_x_gradient", progress=False)
    table = agreement_table({"occlusion": occ, "input_x_gradient": ixg})
    assert table["occlusion"]["occlusion"] == pytest.approx(1.0)
    assert table["occlusion"]["input_x_gradient"] == pytest.approx(table["input_x_gradient"]["occlusion"])
    assert -1.0 <= table["occlusion"]["input_x_gradient"] <= 1.0
