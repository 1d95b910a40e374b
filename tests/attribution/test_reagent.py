"""ReAGent: the decisive token of a hand-built model ranks first, seeded runs repeat, forward passes are counted
exactly (against a counter wrapped around the model's forward), bad options fail before any work."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from workbench.attribution import Contrastive, TargetFunction, attribute
from workbench.attribution.methods.registry import METHOD_REGISTRY
from workbench.models.tiny import tiny_lm

from .linear_lm import LinearLM

PROMPT, DECISIVE = "abcqefghij", 3  # byte tokens; "q" (position 3) decides the prediction


@pytest.fixture
def decisive():
    """The linear model with one decisive token: "q"'s embedding is 4 x the head column of the token Y with the
    largest head norm, other positions are damped (a = 0.2), so p(Y) ~ 1 with "q" and falls without it."""
    lm = LinearLM(seed=0)
    lm.a[:] = 0.2
    lm.a[DECISIVE] = 1.0
    y = int(torch.linalg.vector_norm(lm.U, dim=0).argmax())
    lm.E[ord("q")] = 4 * lm.U[:, y]
    return lm, y


def prob(lm, ids, y):
    return float(torch.softmax(lm.forward([ids]).logits[0, -1], -1)[y])


def count_forwards(monkeypatch, lm):
    calls = []
    inner = lm.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(lm, "forward", counted)
    return calls


def test_registered():
    assert "reagent" in METHOD_REGISTRY.names()  # found by the registry's discovery, no import needed


def test_the_decisive_token_ranks_first(decisive):
    lm, y = decisive
    ids = lm.tokenizer.encode(PROMPT)
    assert prob(lm, ids, y) > 0.99  # the precondition of the known answer, checked on the model itself
    without = [ids[:DECISIVE] + [t] + ids[DECISIVE + 1:] for t in (ord("a"), ord("z"), 200)]
    assert max(prob(lm, w, y) for w in without) < 0.5
    for replacement in ("lm", "uniform"):
        for seed in range(4):
            a = attribute(lm, PROMPT, [y], method="reagent", replacement=replacement, seed=seed, progress=False)
            assert a.matrix.shape == (1, len(ids))
            assert int(np.argmax(a.matrix[0])) == DECISIVE, (replacement, seed, a.matrix)
            assert a.extras["stopped"] == [True] and a.extras["steps"] == [5]  # stops at the first check


def test_lm_proposals_are_the_models_next_token_predictions(decisive):
    lm, y = decisive
    ids = lm.tokenizer.encode(PROMPT)
    a = attribute(lm, PROMPT, [y], method="reagent", progress=False)
    logits = lm.forward([ids]).logits[0]
    proposals = a.extras["proposals"]
    assert proposals[0] != ids[0]  # no context before the first token: a uniform draw, never the original
    for i in range(1, len(ids)):
        row = logits[i - 1].clone()
        row[ids[i]] = -float("inf")
        assert proposals[i] == int(row.argmax())
    other = LinearLM(seed=1)
    b = attribute(lm, PROMPT, [y], method="reagent", replacement_lm=other, progress=False)
    assert b.extras["forward_passes"]["proposals"] == 1 and b.extras["proposals"] != proposals


def test_seeded_runs_repeat(llama):
    a = attribute(llama, "A cat sat", " up", method="reagent", max_steps=8, seed=3, progress=False)
    b = attribute(llama, "A cat sat", " up", method="reagent", max_steps=8, seed=3, progress=False)
    c = attribute(llama, "A cat sat", " up", method="reagent", max_steps=8, seed=4, progress=False)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert not np.allclose(a.matrix, c.matrix)


def test_forward_passes_are_counted(monkeypatch, decisive):
    lm, y = decisive
    calls = count_forwards(monkeypatch, lm)
    a = attribute(lm, PROMPT, [y], method="reagent", min_steps=3, max_steps=10, progress=False)
    # the prompt's cache (with the proposals), the unperturbed scores, 3 probe batches, 1 stopping check
    assert a.extras["forward_passes"] == {"prompt": 2, "proposals": 0, "probes": 3, "stop_checks": 1}
    assert a.cost.forward_passes == len(calls) == 6
    assert a.cost.evaluations == 1 + 3 * 4 + 1
    calls.clear()
    tight = attribute(lm, PROMPT, [y], method="reagent", min_steps=3, memory_budget=1, progress=False)
    assert tight.extras["forward_passes"]["probes"] == 3 * 4  # one row per forward within the budget
    assert tight.cost.forward_passes == len(calls) == 2 + 12 + 1
    np.testing.assert_allclose(tight.matrix, a.matrix, atol=1e-12)


def test_forward_passes_with_two_continuations_and_a_generation(monkeypatch):
    lm = tiny_lm("llama", seed=0)
    calls = count_forwards(monkeypatch, lm)
    a = attribute(lm, "A cat sat", Contrastive(" up", " on"), method="reagent", max_steps=4, progress=False)
    assert a.matrix.shape == (1, 9) and np.all(np.isfinite(a.matrix))
    assert a.cost.forward_passes == len(calls) == sum(a.extras["forward_passes"].values())
    assert a.extras["forward_passes"]["probes"] == 3 * a.extras["steps"][0]  # prompt end + 2 continuations
    calls.clear()
    g = attribute(lm, "A cat sat", None, method="reagent", max_new_tokens=3, max_steps=6, progress=False)
    generation = g.cost.forward_passes - sum(g.extras["forward_passes"].values())
    assert g.cost.forward_passes == len(calls) and generation >= 1
    assert g.matrix.shape == (len(g.targets), 9) and np.all(np.isfinite(g.matrix))


def test_kv_reuse_batching_and_granularity_do_not_change_the_result(llama):
    run = lambda **kw: attribute(llama, "The cat sat.", " up", method="reagent", max_steps=6, progress=False, **kw)
    base = run()
    np.testing.assert_allclose(run(reuse_prefix=False).matrix, base.matrix, atol=2e-5)
    np.testing.assert_allclose(run(batch_size=1).matrix, base.matrix, atol=2e-5)
    words = run(granularity="word")
    np.testing.assert_allclose(words.matrix, base.matrix @ np.array(
        [[1, 0, 0]] * 3 + [[0, 1, 0]] * 4 + [[0, 0, 1]] * 5, dtype=float), atol=1e-12)


def test_target_function_runs_every_step(llama):
    target = TargetFunction(lambda logits, ids: logits[:, 0, 5], "", ("logit[5]",))
    a = attribute(llama, "A cat", target, method="reagent", max_steps=7, progress=False)
    assert a.extras["steps"] == [7] and a.extras["stopped"] == [False] and np.all(np.isfinite(a.matrix))


@pytest.mark.parametrize("options,match", [
    ({"ratio": 0}, r"ratio must be a float in \(0, 1\)"),
    ({"ratio": 1.0}, r"ratio must be a float in \(0, 1\)"),
    ({"ratio": -0.5}, r"ratio must be a float in \(0, 1\)"),
    ({"keep_ratio": 1.5}, r"keep_ratio must be a float in \(0, 1\)"),
    ({"max_steps": 0}, "max_steps must be an int >= 1"),
    ({"max_steps": -3}, "max_steps must be an int >= 1"),
    ({"min_steps": 0}, "min_steps must be an int >= 1"),
    ({"probes": 0}, "probes must be an int >= 1"),
    ({"stop_rank": 0}, "stop_rank must be an int >= 1"),
    ({"replacement": "roberta"}, "replacement must be one of"),
    ({"replacement": "uniform", "replacement_lm": LinearLM(seed=1)}, "replacement_lm is only used with"),
    ({"replacement_lm": SimpleNamespace(vocab_size=300, forward=print)}, "replacement_lm has a vocabulary of 300"),
    ({"replacement_lm": "gpt2"}, "replacement_lm must be an LM"),
])
def test_bad_options_fail_before_work(linear, options, match):
    with pytest.raises(ValueError, match=match):
        attribute(linear, PROMPT, [7], method="reagent", **options)
    assert linear.counters.forward_calls == 0


@pytest.mark.slow
def test_real_model(real_lm):
    prompt = "The capital of France is"
    a = attribute(real_lm, prompt, " Paris", method="reagent", max_steps=6, probes=2, progress=False)
    n = len(real_lm.tokenizer.encode(prompt))
    assert a.matrix.shape == (1, n) and np.all(np.isfinite(a.matrix))
    assert a.cost.forward_passes == sum(a.extras["forward_passes"].values())
    assert a.cost.seconds < 60
