"""FrugalPrompt-style compression: on a position-free linear model (bag of embeddings) the metric of a
compressed prompt is the sum of the kept tokens' known contributions, so top-k by the true contribution beats
bottom-k and both match a hand computation; method rankers and seeded random-k on a tiny model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.attribution import TargetFunction, attribute
from workbench.attribution.compression import compress, compression_curves
from workbench.attribution.faithfulness import counts_for

PROMPT = "known words!"
Y = 7
TARGET = TargetFunction(lambda logits, ids: logits[:, 0, Y], "", ("logit[Y]",))


@pytest.fixture
def bag(linear):
    linear.a = torch.ones_like(linear.a)  # every position weighs 1: dropping a token removes exactly its term
    return linear


def test_top_k_by_true_contribution_beats_bottom_k(bag):
    ids = bag.tokenizer.encode(PROMPT)
    c = bag.contribution(ids, Y).numpy()
    out = compression_curves(bag, PROMPT, TARGET, {"true": c}, random_repeats=4, seed=1)
    top, bottom, random = out.curves["top:true"], out.curves["bottom:true"], out.curves["random"]
    assert np.all(top[:-1] > bottom[:-1]) and top[-1] == pytest.approx(bottom[-1])
    assert np.all(bottom <= random + 1e-9) and np.all(random <= top + 1e-9)
    desc = np.sort(c)[::-1]
    counts = counts_for(out.fractions, len(ids))
    np.testing.assert_allclose(top, [desc[:k].sum() for k in counts], atol=1e-9)
    np.testing.assert_allclose(bottom, [desc[::-1][:k].sum() for k in counts], atol=1e-9)
    assert out.full == pytest.approx(c.sum())
    assert out.kept_units == counts and out.n_units == len(ids)


def test_occlusion_ranker_equals_the_true_ranking_on_the_bag_model(bag):
    ids = bag.tokenizer.encode(PROMPT)
    c = bag.contribution(ids, Y).numpy()
    out = compression_curves(bag, PROMPT, TARGET, {"true": c, "occ": "occlusion"}, random_repeats=0,
                             method_options={"occlusion": {"baseline": "zero"}})
    np.testing.assert_allclose(out.curves["top:occ"], out.curves["top:true"], atol=1e-9)
    assert "random" not in out.curves and "occ" in out.attribution_cost


def test_method_rankers_and_seeded_random_on_a_tiny_model(llama):
    kw = {"fractions": [0.25, 0.5, 1.0], "random_repeats": 2, "granularity": "word"}
    a = compression_curves(llama, "The cat sat on a mat.", " Yes", ["occlusion", "input_x_gradient"], seed=5, **kw)
    b = compression_curves(llama, "The cat sat on a mat.", " Yes", ["occlusion", "input_x_gradient"], seed=5, **kw)
    assert set(a.curves) == {"top:occlusion", "bottom:occlusion", "top:input_x_gradient",
                             "bottom:input_x_gradient", "random"}
    np.testing.assert_array_equal(a.curves["random"], b.curves["random"])
    for curve in a.curves.values():
        assert curve[-1] == pytest.approx(a.full, abs=1e-4)  # 100% keeps the whole prompt
    # the full value is the reference's log-likelihood
    occ = attribute(llama, "The cat sat on a mat.", " Yes", method="occlusion", progress=False)
    assert a.full == pytest.approx(float(occ.target_values.sum()), abs=1e-4)
    assert a.to_dict()["metric"] == "log-likelihood of the reference" and len(a.rows()) == 3


def test_compress_keeps_top_units_in_order(bag):
    a = attribute(bag, PROMPT, TARGET, method="occlusion", baseline="zero", granularity="word", progress=False)
    best = a.sources[int(np.argmax(a.matrix[0]))].text
    assert compress(a, 0.5) == best and compress(a, 1.0) == PROMPT


def test_bad_input_before_work(llama):
    with pytest.raises(ValueError, match="unknown attribution method"):
        compression_curves(llama, "The cat.", " Yes", ["nope"])
    with pytest.raises(ValueError, match="target: give the reference"):
        compression_curves(llama, "The cat.", None, ["occlusion"])
    with pytest.raises(ValueError, match="expected 8 scores"):
        compression_curves(llama, "The cat.", " Yes", {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="fractions"):
        compression_curves(llama, "The cat.", " Yes", ["occlusion"], fractions=[2.0])
