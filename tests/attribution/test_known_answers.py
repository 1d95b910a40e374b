"""Every method recovers the known answer of a hand-built model.

The linear model (linear_lm.py) makes the logit of token Y at the last prompt position an additive function
f = sum_s c_s with c_s = a_s * (e_s . U[:, Y]). Hence, with the zero baseline:
gradient_s = a_s * U[:, Y]; saliency_s = |a_s| * ||U[:, Y]||; input x gradient_s = integrated gradients_s =
occlusion_s = Shapley_s = c_s exactly (an additive game's Shapley values are its terms; KernelSHAP's
regression fits it exactly; the path integral of a constant gradient is exact for any rule).
With the "pad" baseline (the EOS embedding e_p), removal replaces e_s by e_p: c_s - a_s * (e_p . U[:, Y]).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.attribution import TargetFunction, attribute

PROMPT = "known!"
Y = 7


def logit_of_y(logits, ids):
    return logits[:, 0, Y]


TARGET = TargetFunction(logit_of_y, "", ("logit[Y]",))


def expected(linear, baseline="zero"):
    ids = linear.tokenizer.encode(PROMPT)
    c = linear.contribution(ids, Y)
    if baseline == "pad":
        c = c - linear.a[: len(ids)] * (linear.E[linear.tokenizer.eos_id] @ linear.U[:, Y])
    return c.numpy()


@pytest.mark.parametrize("method,options", [
    ("input_x_gradient", {}),
    ("integrated_gradients", {"steps": 3, "rule": "trapezoid", "baseline": "zero"}),
    ("integrated_gradients", {"steps": 2, "rule": "gauss_legendre", "baseline": "zero"}),
    ("occlusion", {"baseline": "zero"}),
    ("shapley", {"baseline": "zero", "permutations": 6}),
    ("kernel_shap", {"baseline": "zero", "samples": 40}),
])
def test_additive_contributions(linear, method, options):
    a = attribute(linear, PROMPT, TARGET, method=method, progress=False, **options)
    assert a.matrix.shape == (1, len(PROMPT))
    np.testing.assert_allclose(a.matrix[0], expected(linear), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method,options", [
    ("occlusion", {}), ("shapley", {"permutations": 4}), ("kernel_shap", {"samples": 30}),
    ("integrated_gradients", {"baseline": "pad", "steps": 1, "rule": "trapezoid"}),
])
def test_pad_baseline(linear, method, options):
    a = attribute(linear, PROMPT, TARGET, method=method, progress=False, **options)
    np.testing.assert_allclose(a.matrix[0], expected(linear, "pad"), rtol=1e-9, atol=1e-9)


def test_sampler_standard_errors_vanish_on_an_additive_game(linear):
    for method, options in (("shapley", {"permutations": 8}), ("kernel_shap", {"samples": 30})):
        a = attribute(linear, PROMPT, TARGET, method=method, progress=False, **options)
        assert np.abs(a.stderr()).max() < 1e-9


@pytest.mark.parametrize("norm,order", [(2, 2), (1, 1), ("inf", float("inf"))])
def test_saliency_is_the_gradient_norm(linear, norm, order):
    a = attribute(linear, PROMPT, TARGET, method="saliency", norm=norm, progress=False)
    want = linear.a[: len(PROMPT)].abs() * torch.linalg.vector_norm(linear.U[:, Y], ord=order)
    np.testing.assert_allclose(a.matrix[0], want.numpy(), rtol=1e-12)


def test_values_and_completeness_reported(linear):
    a = attribute(linear, PROMPT, TARGET, method="integrated_gradients", steps=4, baseline="zero", progress=False)
    f = expected(linear).sum()
    assert a.target_values[0] == pytest.approx(f, rel=1e-12)  # the zero baseline has logit 0
    assert a.extras["baseline_values"][0] == pytest.approx(0.0, abs=1e-12)
    assert a.extras["max_abs_gap"] < 1e-9


def test_word_granularity_sums_contributions(linear):
    prompt = "ab cd e"
    target = TargetFunction(logit_of_y, "", ("y",))
    c = linear.contribution(linear.tokenizer.encode(prompt), Y).numpy()
    want = [c[0:2].sum(), c[2:5].sum(), c[5:7].sum()]  # "ab", " cd", " e": spaces join the next word
    for method in ("input_x_gradient", "occlusion", "shapley"):
        a = attribute(linear, prompt, target, method=method, granularity="word", baseline="zero", progress=False) \
            if method != "input_x_gradient" else \
            attribute(linear, prompt, target, method=method, granularity="word", progress=False)
        assert [u.text for u in a.sources] == ["ab", " cd", " e"]
        np.testing.assert_allclose(a.matrix[0], want, rtol=1e-9, atol=1e-12)
