"""Goose: the spine (context match) and the recycled branches of a hand-built case, best-first allocation from
per-source acceptance statistics, greedy output identical to LM.generate (EOS inside a draft included)."""
import random

import pytest
import torch
from spec_draft_helpers import greedy_on_default_model
from test_spec_decode import lookup_prompt_with_two_accepted_tokens

from workbench.models import tiny_lm
from workbench.speculative import (
    DraftTree,
    SamplingConfig,
    VerifyResult,
    speculative_generate,
)
from workbench.speculative.drafters import PromptLookupDrafter, get_drafter
from workbench.speculative.drafters.goose import GooseDrafter

ARCHS = ["llama", "qwen2", "gemma3"]
CONTEXT = [5, 6, 7, 8, 5]  # the last token 5 occurred at 0: the spine is 6, 7, 8 (a 1-gram match)


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("llama", seed=0)


def hand_built(lm, **options) -> GooseDrafter:
    drafter = GooseDrafter(**{"k": 2, "spine_tokens": 3, "branch_depth": 1, **options})
    drafter.begin(lm, CONTEXT, SamplingConfig(0.0))
    for token, row in {5: [6, 9], 6: [10, 11], 7: [8, 12], 9: [13, 14]}.items():
        drafter.matrix[token] = torch.tensor(row)
    return drafter


def test_spine_with_recycled_branches_for_a_known_context(lm):
    drafter = hand_built(lm)
    assert drafter.spine(CONTEXT) == (1, [6, 7, 8])
    # values (priors: spine .6, branch rank r .3 / (1 + r)): spine 6 .6, 7 .36, 8 .216; off the root M[5] = [6, 9]:
    # rank 0 is the spine's own token, skipped, so 9 is rank 1 (.15); off 6: 10 (.18), 11 (.09); off 7: M[7][0] = 8
    # is the spine again, so 12 (rank 1, .054); M[8] is empty; branch_depth 1: branch nodes get no children
    tree = drafter.propose(CONTEXT, 10)
    assert tree.tokens.tolist() == [6, 7, 8, 10, 9, 11, 12]
    assert tree.parents.tolist() == [-1, 0, 1, 0, -1, 0, 1]
    assert tree.token_paths() == [[6, 7, 8], [6, 10], [9], [6, 11], [6, 7, 12]]
    assert drafter.propose(CONTEXT, 4).tokens.tolist() == [6, 7, 8, 10]
    deeper = hand_built(lm, branch_depth=2)
    # now branch 9 may continue with M[9] = [13, 14] (values .15 * .3 = .045, .0225): the cheapest nodes
    assert deeper.propose(CONTEXT, 9).tokens.tolist() == [6, 7, 8, 10, 9, 11, 12, 13, 14]


def test_no_context_match_gives_the_recycling_tree(lm):
    drafter = hand_built(lm)
    context = [1, 2, 5]  # 5 never occurred before: no spine
    assert drafter.spine(context) == (0, [])
    tree = drafter.propose(context, 10)
    assert tree.token_paths() == [[6], [9]]  # M[5], no children: branch_depth 1
    # 10 (.3 * .3) first, then ties at .045 in the order offered: 13 (when 9 was added) before 11
    assert hand_built(lm, branch_depth=3).propose(context, 10).tokens.tolist() == [6, 9, 10, 13, 11, 14]


def test_statistics_from_verification_reshape_the_tree(lm):
    drafter = hand_built(lm)
    tree = drafter.propose(CONTEXT, 10)
    logits = torch.zeros(len(tree) + 1, 257)
    logits[0, [40, 41]] = torch.tensor([2.0, 1.0])  # the root row: M[5] becomes [40, 41]
    drafter.update(tree, VerifyResult([0, 1], [6, 7], 12), logits)
    # reached: the root's children (spine 6, branch 9), children of accepted 6 (spine 7, 10, 11) and of accepted 7
    # (spine 8, branch 12); accepted: 6 and 7
    assert drafter.stats == {("spine", 1): [3, 2], ("branch", 0): [1, 0], ("branch", 1): [3, 0]}
    assert drafter.rate(("spine", 1)) == pytest.approx((2 + 2 * 0.6) / (3 + 2))
    assert drafter.matrix[5].tolist() == [40, 41]
    # a spine that is never accepted after a 1-gram match: the budget goes to the recycled branches first
    drafter = hand_built(lm)
    drafter.stats = {("spine", 1): [100, 0]}
    assert drafter.propose(CONTEXT, 3).tokens.tolist() == [9, 6, 10]
    # a longer match has its own (prior) confidence
    assert drafter.rate(("spine", 2)) == pytest.approx(0.6)


def test_drafts_are_valid_trees_within_the_budget(lm):
    rng = random.Random(0)
    drafter = GooseDrafter(k=4)
    drafter.begin(lm, [1], SamplingConfig(0.0))
    gen = torch.Generator().manual_seed(0)
    for token in range(6):  # distinct successors per row, as top-k rows are
        drafter.matrix[token] = torch.randperm(6, generator=gen)[:4]
    context = [rng.randrange(6) for _ in range(120)]
    for end in range(10, 120, 9):
        budget = rng.randrange(1, 20)
        tree = drafter.propose(context[:end], budget)
        assert isinstance(tree, DraftTree) and len(tree) <= budget
        for node in [-1] + list(range(len(tree))):
            kids = [tree.token(c) for c in tree.children(node)]
            assert len(set(kids)) == len(kids)
        spine = PromptLookupDrafter(3, 1, drafter.spine_tokens).continuations(context[:end])
        if spine and budget >= 1:
            assert tree.token(tree.children()[0]) == spine[0][0]  # the spine is the first child of the root


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_autoregressive(arch):
    target = tiny_lm(arch, seed=0)
    for prompt in ([1, 2, 3, 4, 5, 1, 2, 3], list(b"the cat sat on the mat, the cat")):
        ref = target.generate(prompt, max_new_tokens=40)
        drafter = GooseDrafter()
        for budget in (3, 12):
            spec = speculative_generate(target, prompt, drafter, max_new_tokens=40, budget=budget)
            assert spec.new_ids == ref.new_ids and spec.stop_reason == ref.stop_reason and spec.text == ref.text
            assert spec.verifier == "greedy" and all(s.drafted <= budget for s in spec.steps)
    assert spec.tau > 1.3


@pytest.mark.parametrize("arch", ARCHS)
def test_eos_inside_the_spine(arch):
    """A prompt whose repeated last token makes the spine [a, b, ...] with a, b the greedy continuation; with b as
    EOS the step accepts a and b from the spine and generation ends there, as LM.generate does."""
    target = tiny_lm(arch, seed=0)
    prompt, a, b = lookup_prompt_with_two_accepted_tokens(target)
    drafter = GooseDrafter()
    drafter.begin(target, prompt, SamplingConfig(0.0))
    assert drafter.spine(prompt)[1][:2] == [a, b]
    target.model.generation_config.eos_token_id = b
    ref = target.generate(prompt, max_new_tokens=20)
    assert ref.new_ids == [a, b] and ref.stop_reason == "eos"
    spec = speculative_generate(target, prompt, GooseDrafter(), max_new_tokens=20)
    assert spec.new_ids == ref.new_ids and spec.stop_reason == "eos" and spec.text == ref.text
    assert spec.steps[0].accepted >= 2 and spec.steps[0].drafted > 2


@pytest.mark.parametrize("kwargs, match", [
    ({"max_ngram": 0}, r"max_ngram \(n-gram size\) must be an int >= 1"),
    ({"min_ngram": 0}, r"min_ngram \(n-gram size\) must be an int >= 1"),
    ({"min_ngram": 3, "max_ngram": 2}, r"min_ngram \(3\) must be <= max_ngram \(2\)"),
    ({"spine_tokens": 0}, "spine_tokens must be an int >= 1"),
    ({"k": 0}, r"k \(successors kept per token\) must be an int >= 1"),
    ({"branch_depth": 0}, "branch_depth must be an int >= 1"),
    ({"spine_prior": 0}, r"spine_prior must be a number in \(0, 1\]"),
    ({"branch_prior": 2.0}, "branch_prior must be"),
    ({"prior_weight": 0}, "prior_weight must be a number > 0"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GooseDrafter(**kwargs)


def test_bad_budget_and_missing_begin(lm):
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        speculative_generate(lm, [1, 2], "goose", budget=0)
    drafter = get_drafter("goose", k=4)
    with pytest.raises(RuntimeError, match="call begin"):
        drafter.propose([1, 2], 3)
    drafter.begin(lm, [1, 2], SamplingConfig(0.0))
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        drafter.propose([1, 2], 0)


@pytest.mark.slow
def test_greedy_equals_autoregressive_on_the_default_model():
    spec, ref = greedy_on_default_model(GooseDrafter())
    assert spec.new_ids == ref.new_ids and spec.stop_reason == ref.stop_reason
    assert spec.tau > 1.5
    print(f"goose tau on smollm2-135m: {spec.tau:.2f}, forward calls {spec.forward_calls} vs {ref.forward_calls}")
