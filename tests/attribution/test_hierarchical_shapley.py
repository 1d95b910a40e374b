"""Hierarchical Shapley (TextGenSHAP) against exact Shapley values: on the additive linear model both stages are
exact; with every coarse unit refined it is flat Shapley (checked against enumeration within its standard error)."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.attribution import (
    Contrastive,
    PerturbationValue,
    TargetFunction,
    attribute,
)
from workbench.attribution.methods.hierarchical_shapley import (
    flat_coalition_count,
    select_groups,
)
from workbench.attribution.methods.registry import METHOD_REGISTRY
from workbench.attribution.problem import Problem, check_prompt
from workbench.attribution.targets import check_target, resolve
from workbench.attribution.units import build_units

from .exact import exact_shapley

Y = 7
PROMPT = "Ab c. De fg hi. J!"  # three sentences, 18 byte tokens
SENTENCES = [range(5), range(5, 15), range(15, 18)]  # "Ab c." / " De fg hi." / " J!" (spaces join the next)
TARGET = TargetFunction(lambda logits, ids: logits[:, 0, Y], "", ("logit[Y]",))


def exact_tokens(linear, prompt=PROMPT):
    """The linear model's logit of Y is additive: each token's exact Shapley value is its term (zero baseline)."""
    return linear.contribution(linear.tokenizer.encode(prompt), Y).numpy()


def hier(lm, prompt=PROMPT, target=TARGET, **options):
    options = {"baseline": "zero", "permutations": 4, **options}
    return attribute(lm, prompt, target, method="hierarchical_shapley", progress=False, **options)


def test_registered():
    assert "hierarchical_shapley" in METHOD_REGISTRY.names()  # found by the registry's discovery, no import needed


@pytest.mark.parametrize("top_k", [1, 2])
def test_additive_model_is_exact_in_both_stages(linear, top_k):
    c = exact_tokens(linear)
    a = hier(linear, top_k=top_k)
    sums = np.array([c[list(s)].sum() for s in SENTENCES])
    assert [u["text"] for u in a.extras["coarse_units"]] == ["Ab c.", " De fg hi.", " J!"]
    np.testing.assert_allclose(a.extras["coarse_values"][0], sums, rtol=1e-9, atol=1e-12)
    want = list(np.argsort(-np.abs(sums), kind="stable")[:top_k])
    assert a.extras["refined_groups"] == want
    refined = np.zeros(len(c), dtype=bool)
    for g, s in enumerate(SENTENCES):
        if g in want:
            refined[list(s)] = True
            np.testing.assert_allclose(a.matrix[0, list(s)], c[list(s)], rtol=1e-9, atol=1e-12)
        else:  # an unrefined sentence's value is spread evenly over its tokens
            np.testing.assert_allclose(a.matrix[0, list(s)], sums[g] / len(s), rtol=1e-9, atol=1e-12)
    assert a.extras["refined"] == refined.tolist()
    assert np.abs(a.stderr()).max() < 1e-9


def test_blocks_mass_and_word_granularity(linear):
    c = exact_tokens(linear)
    a = hier(linear, coarse=4, top_k=None, mass=0.6)
    blocks = [range(s, min(s + 4, len(c))) for s in range(0, len(c), 4)]
    sums = np.array([c[list(b)].sum() for b in blocks])
    np.testing.assert_allclose(a.extras["coarse_values"][0], sums, rtol=1e-9, atol=1e-12)
    assert a.extras["refined_groups"] == select_groups(np.abs(sums), None, 0.6)
    for g in a.extras["refined_groups"]:
        np.testing.assert_allclose(a.matrix[0, list(blocks[g])], c[list(blocks[g])], rtol=1e-9, atol=1e-12)
    words = hier(linear, granularity="word", top_k=3)  # fine units are words, grouped by sentence
    assert [u.text for u in words.sources] == ["Ab", " c.", " De", " fg", " hi.", " J!"]
    word_sums = [c[0:2].sum(), c[2:5].sum(), c[5:8].sum(), c[8:11].sum(), c[11:15].sum(), c[15:18].sum()]
    np.testing.assert_allclose(words.matrix[0], word_sums, rtol=1e-9, atol=1e-12)


def test_selection_rule():
    imp = np.array([0.1, 0.5, 0.3, 0.1])
    assert select_groups(imp, 2, None) == [1, 2]
    assert select_groups(imp, None, 0.5) == [1]
    assert select_groups(imp, None, 0.8) == [1, 2]
    assert select_groups(imp, 1, 0.8) == [1]  # whichever comes first
    assert select_groups(imp, None, 1.0) == [1, 2, 0, 3]


def test_evaluations_saved_against_flat_shapley(linear):
    a = hier(linear, top_k=1, permutations=8)
    flat = attribute(linear, PROMPT, TARGET, method="shapley", baseline="zero", permutations=8, progress=False)
    assert a.extras["flat_evaluations"] == flat.cost.evaluations  # the count matches flat Shapley's real cost
    assert a.extras["evaluations_saved"] == flat.cost.evaluations - a.cost.evaluations > 0
    assert a.cost.evaluations == a.extras["coarse_evaluations"] + a.extras["fine_evaluations"]
    # the count by hand: 3 players, 4 antithetic pairs cover at most all 2^3 coalitions
    assert flat_coalition_count(3, 8, 0) <= 8 and flat_coalition_count(1, 4, 0) == 2


# ---- a non-additive model: the tiny llama, players are the prompt's byte tokens --------------------------------
SMALL, CONT = "Hi. A cat", " up"  # 9 tokens: sentences "Hi." and " A cat"


@pytest.fixture(scope="module")
def exact_small(llama):
    text = check_prompt(llama, SMALL)
    units = build_units("token", text.ids, text.offsets, text.data)
    problem = Problem(llama, text, units, resolve(llama, check_target(llama, CONT), text.ids))
    value = PerturbationValue(problem, "pad", batch_size=128)
    groups = np.zeros((2, 9), dtype=bool)
    groups[0, :3], groups[1, 3:] = True, True
    coarse = exact_shapley(lambda m: value(np.asarray(m, dtype=float) @ groups > 0), 2)
    return exact_shapley(value, 9), coarse


def test_all_refined_equals_flat_shapley_in_expectation(llama, exact_small):
    exact, exact_coarse = exact_small
    a = attribute(llama, SMALL, CONT, method="hierarchical_shapley", top_k=2, permutations=400, batch_size=128,
                  progress=False)
    assert a.extras["refined"] == [True] * 9 and a.matrix.shape == exact.shape == (3, 9)
    assert np.all(np.abs(a.matrix - exact) <= 5 * a.stderr() + 1e-6)
    np.testing.assert_allclose(a.extras["coarse_values"], exact_coarse, atol=1e-5)  # 2 players: antithetic exact
    flat = attribute(llama, SMALL, CONT, method="shapley", permutations=400, batch_size=128, progress=False)
    se = np.sqrt(a.stderr() ** 2 + flat.stderr() ** 2)
    assert np.all(np.abs(a.matrix - flat.matrix) <= 5 * se + 1e-6)


def test_memory_budget_and_targets(llama):
    base = attribute(llama, SMALL, CONT, method="hierarchical_shapley", top_k=1, permutations=4, progress=False)
    tight = attribute(llama, SMALL, CONT, method="hierarchical_shapley", top_k=1, permutations=4,
                      memory_budget=1, reuse_prefix=False, progress=False)
    np.testing.assert_allclose(base.matrix, tight.matrix, atol=2e-5)
    assert tight.cost.forward_passes > base.cost.forward_passes
    c = attribute(llama, SMALL, Contrastive(" up", " on"), method="hierarchical_shapley", permutations=4,
                  granularity="word", progress=False)
    assert c.matrix.shape == (1, 3) and np.all(np.isfinite(c.matrix))
    g = attribute(llama, SMALL, None, method="hierarchical_shapley", permutations=4, max_new_tokens=2,
                  progress=False)
    assert g.matrix.shape == (len(g.targets), 9) and np.all(np.isfinite(g.matrix))


@pytest.mark.parametrize("options,match", [
    ({"top_k": 0}, "top_k must be an int >= 1"),
    ({"mass": 1.5}, r"mass must be None or a float in \(0, 1\]"),
    ({"top_k": None}, "top_k and mass are both None"),
    ({"coarse": "paragraph"}, "coarse must be 'sentence' or an int"),
    ({"coarse": 0}, "coarse must be an int >= 1"),
    ({"permutations": 5}, "permutations must be even"),
])
def test_bad_options_fail_before_work(linear, options, match):
    with pytest.raises(ValueError, match=match):
        attribute(linear, PROMPT, TARGET, method="hierarchical_shapley", **options)
    assert linear.counters.forward_calls == 0


@pytest.mark.slow
def test_real_model(real_lm):
    prompt = "Paris is in France. The capital of France is"
    a = attribute(real_lm, prompt, " Paris", method="hierarchical_shapley", permutations=8, top_k=1, batch_size=32,
                  progress=False)
    n = len(real_lm.tokenizer.encode(prompt))
    assert a.matrix.shape == (1, n) and np.all(np.isfinite(a.matrix)) and np.all(np.isfinite(a.stderr()))
    assert len(a.extras["coarse_units"]) == 2 and a.extras["evaluations_saved"] > 0
    assert a.cost.seconds < 60
