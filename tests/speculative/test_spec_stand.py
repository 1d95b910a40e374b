"""STAND: the logit n-gram memory after known observations, best-first tree shape from acceptance statistics,
draft distributions, exact losslessness with the 'rsd' verifier (every possible draft enumerated), seeded
reproducibility, greedy output identical to LM.generate (EOS inside a draft included)."""
from collections import Counter, defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from spec_draft_helpers import greedy_on_default_model
from spec_toy import ToyModel, completed_joint, target_joint, target_rows

import workbench.speculative.drafters.stand as stand_module
from workbench.models import tiny_lm
from workbench.speculative import (
    DraftTree,
    SamplingConfig,
    VerifyResult,
    enumerate_outcomes,
    get_verifier,
    speculative_generate,
)
from workbench.speculative.drafters import get_drafter
from workbench.speculative.drafters.stand import NGramMemory, StandDrafter

ARCHS = ["llama", "qwen2", "gemma3"]


def filled(memory: NGramMemory, entries: dict) -> None:
    for context, dist in entries.items():
        memory.observe(list(context), list(dist), list(dist.values()))


def test_prompt_is_stored_as_one_hot_observations_and_merged_by_mean():
    drafter = StandDrafter(max_ngram=2, k=2)
    drafter.begin(SimpleNamespace(vocab_size=257), [1, 2, 1, 3], SamplingConfig(0.0))
    assert drafter.memory.table == {
        (1,): (2, {2: 0.5, 3: 0.5}), (2,): (1, {1: 1.0}), (1, 2): (1, {1: 1.0}), (2, 1): (1, {3: 1.0})}
    memory = NGramMemory(max_ngram=1, k=2)
    memory.observe([4], [10, 11], [0.5, 0.3])
    memory.observe([4], [12, 10], [0.9, 0.1])
    # means over 2 observations: 10 -> 0.3, 11 -> 0.15, 12 -> 0.45; only the top 2 are kept
    count, dist = memory.table[(4,)]
    assert count == 2 and list(dist) == [12, 10] and dist == pytest.approx({12: 0.45, 10: 0.3})
    assert memory.lookup([9, 4]) == ((4,), dist) and memory.lookup([5]) is None


def test_verification_logits_fill_the_memory():
    drafter = StandDrafter(max_ngram=2, k=2)
    drafter.begin(SimpleNamespace(vocab_size=257), [1, 2, 1, 3], SamplingConfig(0.0))
    tree = drafter.propose([1, 2, 1, 3], 4)
    assert len(tree) == 0  # nothing known after 3
    tree = DraftTree([4, 5], [-1, 0])
    logits = torch.zeros(3, 257)
    logits[0, [10, 11]] = torch.tensor([3.0, 2.0])
    logits[1, [20, 21]] = torch.tensor([1.0, 4.0])
    logits[2, [30, 31]] = torch.tensor([5.0, 5.0])
    drafter.update(tree, VerifyResult([0], [4], 7), logits)
    probs = torch.softmax(logits, -1)
    table = drafter.memory.table
    for key, row, ids in (((3,), 0, [10, 11]), ((1, 3), 0, [10, 11]), ((4,), 1, [21, 20]), ((3, 4), 1, [21, 20]),
                          ((5,), 2, [30, 31]), ((4, 5), 2, [30, 31])):
        count, dist = table[key]
        assert count == 1 and list(dist) == ids
        assert list(dist.values()) == pytest.approx(probs[row, ids].tolist())


def greedy_drafter(**options) -> StandDrafter:
    drafter = StandDrafter(max_ngram=2, k=3, **options)
    drafter.begin(SimpleNamespace(vocab_size=257), [], SamplingConfig(0.0))
    filled(drafter.memory, {(8,): {20: 0.6, 21: 0.3, 22: 0.1}, (8, 20): {30: 0.9, 31: 0.1}, (20, 30): {40: 1.0},
                            (8, 21): {33: 1.0}})
    return drafter


def test_best_first_tree_for_a_known_context():
    drafter = greedy_drafter()
    # rates without statistics = prior / (1 + rank) = 0.5, 0.25, 0.1667; values = products along the path:
    # 20: .5, 21: .25, 30: .25, 22: .167, 33: .125, 31: .125, 40: .125 (ties in the order they were offered)
    tree = drafter.propose([7, 8], 10)
    assert tree.tokens.tolist() == [20, 21, 30, 22, 33, 31, 40]
    assert tree.parents.tolist() == [-1, -1, 0, -1, 1, 0, 2]
    assert tree.draft_probs is None  # temperature 0: ranked children, no draft distributions
    assert drafter.propose([7, 8], 3).tokens.tolist() == [20, 21, 30]
    assert len(drafter.propose([7, 9], 5)) == 0
    shallow = greedy_drafter(max_depth=1)
    assert shallow.propose([7, 8], 10).token_paths() == [[20], [21], [22]]


def test_statistics_from_verification_and_the_tree_grows_where_acceptance_is_high():
    drafter = greedy_drafter()
    tree = drafter.propose([7, 8], 10)
    drafter.update(tree, VerifyResult([0, 2], [20, 30], 40), torch.zeros(8, 257))
    # reached: the root's children (0, 1, 3), the children of accepted 0 (2, 5) and of accepted 2 (6); not 4
    assert drafter.stats == {(0,): [1, 1], (1,): [1, 0], (2,): [1, 0], (0, 0): [1, 1], (0, 1): [1, 0],
                             (0, 0, 0): [1, 0]}
    assert drafter.rate((0,)) == pytest.approx((1 + 2 * 0.5) / 3)
    trained = greedy_drafter()
    trained.stats = {(1,): [100, 0], (0, 0): [50, 50]}
    # rank 1 under the root is almost never accepted, the top-ranked chain always: the budget goes down the chain
    assert trained.propose([7, 8], 3).token_paths() == [[20, 30, 40]]
    assert greedy_drafter().propose([7, 8], 3).token_paths() == [[21], [20, 30]]


def test_draft_probs_are_the_processed_memory_distributions():
    drafter = StandDrafter(max_ngram=2, k=3)
    drafter.begin(SimpleNamespace(vocab_size=257), [], SamplingConfig(0.8), torch.Generator().manual_seed(0))
    filled(drafter.memory, {(8,): {20: 0.6, 21: 0.3, 22: 0.1}, (20,): {30: 0.9, 31: 0.1},
                            (21,): {30: 0.5, 32: 0.5}, (22,): {33: 1.0}})
    expected = {8: {20: 0.6, 21: 0.3, 22: 0.1}, 20: {30: 0.9, 31: 0.1}, 21: {30: 0.5, 32: 0.5}, 22: {33: 1.0}}
    seen = set()
    for _ in range(20):
        tree = drafter.propose([7, 8], 8)
        assert tree.draft_probs is not None and tree.draft_probs.shape == (len(tree), 257)
        for node in range(len(tree)):
            parent = tree.parent(node)
            context_token = 8 if parent < 0 else tree.token(parent)
            m = expected[context_token]
            q = torch.zeros(257, dtype=torch.float64)
            weights = torch.tensor(list(m.values()), dtype=torch.float64) ** (1 / 0.8)  # temperature 0.8
            q[list(m)] = weights / weights.sum()
            assert torch.allclose(tree.draft_probs[node], q, atol=1e-12)
            siblings = [tree.token(c) for c in tree.children(parent)]
            assert len(set(siblings)) == len(siblings) and set(siblings) <= set(m)
        seen.add(tuple(tree.tokens.tolist()[:3]))
    assert len(seen) > 1  # stochastic: the order of the root's children varies


def exact_sampler(rng):
    """Sequential sampling without replacement through a RandomSource: the law of Gumbel-top-k, enumerable."""

    def draw(q, k, generator=None):
        remaining, out = q.clone(), []
        for _ in range(min(k, int((q > 0).sum()))):
            token = rng.categorical(remaining)
            out.append(token)
            remaining[token] = 0
        return torch.tensor(out, dtype=torch.long)

    return draw


def toy_stand(settings: SamplingConfig, generator=None) -> StandDrafter:
    drafter = StandDrafter(max_ngram=2, k=3, max_depth=2)
    drafter.begin(SimpleNamespace(vocab_size=12), [], settings, generator)
    # memories that overlap the target's support only partly (token 9: draft mass where the target has little)
    filled(drafter.memory, {(5,): {1: 0.4, 2: 0.3, 3: 0.2, 9: 0.1}, (1,): {2: 0.5, 4: 0.5}, (2,): {1: 0.6, 7: 0.4},
                            (3,): {0: 1.0}})
    return drafter


def draft_law(drafter: StandDrafter, prefix, budget: int, monkeypatch) -> list[tuple[float, DraftTree]]:
    def program(rng):
        monkeypatch.setattr(stand_module, "gumbel_top_k", exact_sampler(rng))
        return drafter.propose(list(prefix), budget)

    return enumerate_outcomes(program)


@pytest.mark.parametrize("settings", [{"temperature": 1.0}, {"temperature": 0.7, "top_k": 5},
                                      {"temperature": 1.2, "top_p": 0.9}])
def test_rsd_on_stand_drafts_is_lossless_exactly(settings, monkeypatch):
    """Every possible STAND draft (exact probabilities) times every outcome of the 'rsd' verifier: the emitted
    tokens, continued by the target when fewer, have the target's joint law (first 1..3 tokens, 1e-9)."""
    target = ToyModel(12, seed=4, **settings)
    prefix = (0, 5)
    drafter = toy_stand(SamplingConfig(**settings))
    verifier = get_verifier("rsd")
    law: dict[tuple[int, ...], float] = defaultdict(float)
    outcomes = draft_law(drafter, prefix, 5, monkeypatch)
    assert len(outcomes) > 10
    for prob, tree in outcomes:
        assert tree.max_depth <= 2 and len(tree) <= 5
        for tokens, p in verifier.output_distribution(tree, target_rows(target, prefix, tree)).items():
            law[tokens] += prob * p
    assert sum(law.values()) == pytest.approx(1.0, abs=1e-9)
    for length in (1, 2, 3):
        error = np.abs(completed_joint(law, target, prefix, length) - target_joint(target, prefix, length)).max()
        assert error < 1e-9, f"first {length} tokens deviate from the target by {error:.3g}"


def test_gumbel_drafting_has_the_enumerated_law(monkeypatch):
    """The real drafter (Gumbel-top-k on a seeded generator) draws its trees with the law enumerated above."""
    settings = SamplingConfig(0.9)
    exact: dict[tuple, float] = defaultdict(float)
    for prob, tree in draft_law(toy_stand(settings), (0, 5), 3, monkeypatch):
        exact[tuple(tree.tokens.tolist())] += prob
    monkeypatch.undo()
    drafter = toy_stand(settings, torch.Generator().manual_seed(0))
    n = 2000
    counts = Counter(tuple(drafter.propose([0, 5], 3).tokens.tolist()) for _ in range(n))
    assert set(counts) <= set(exact)
    assert max(abs(counts[t] / n - p) for t, p in exact.items()) < 0.035


def test_seeded_sampling_is_reproducible():
    lm = tiny_lm("llama", seed=0)
    prompt = list(b"the cat sat on the mat, the cat")
    runs = []
    for seed in (3, 3, 4):
        drafter = StandDrafter()
        speculative_generate(lm, prompt, drafter, max_new_tokens=20)  # fill the memory (greedy)
        runs.append(speculative_generate(lm, prompt, drafter, "rsd", max_new_tokens=24, temperature=0.9, seed=seed,
                                         budget=8))
    assert runs[0].new_ids == runs[1].new_ids and runs[0].steps == runs[1].steps
    assert runs[0].new_ids != runs[2].new_ids
    assert sum(s.drafted for s in runs[0].steps) > 0
    with pytest.raises(ValueError, match="verifier is required for the sampling drafter 'stand'"):
        speculative_generate(lm, prompt, StandDrafter(), max_new_tokens=4, temperature=0.9)


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_autoregressive(arch):
    lm = tiny_lm(arch, seed=0)
    for prompt in ([1, 2, 3, 4, 5, 1, 2, 3], list(b"the cat sat on the mat, the cat")):
        ref = lm.generate(prompt, max_new_tokens=40)
        drafter = StandDrafter()
        for budget in (3, 12):
            spec = speculative_generate(lm, prompt, drafter, max_new_tokens=40, budget=budget)
            assert spec.new_ids == ref.new_ids and spec.stop_reason == ref.stop_reason and spec.text == ref.text
            assert spec.verifier == "greedy" and all(s.drafted <= budget for s in spec.steps)
    assert spec.tau > 1.5  # the memory remembers the first run's target distributions


@pytest.mark.parametrize("arch", ARCHS)
def test_eos_inside_a_draft(arch):
    lm = tiny_lm(arch, seed=2)
    prompt = [3, 1, 4, 1, 5]
    reference = lm.generate(prompt, max_new_tokens=40).new_ids
    drafter = StandDrafter()
    speculative_generate(lm, prompt, drafter, max_new_tokens=40)  # the memory now knows this continuation
    k = next(i for i in range(10, 40) if reference[i] not in reference[:i])
    lm.model.generation_config.eos_token_id = reference[k]
    ref = lm.generate(prompt, max_new_tokens=40)
    assert ref.stop_reason == "eos" and len(ref.new_ids) == k + 1
    spec = speculative_generate(lm, prompt, drafter, max_new_tokens=40, budget=8)
    assert spec.new_ids == ref.new_ids and spec.stop_reason == "eos" and spec.text == ref.text
    assert sum(s.emitted for s in spec.steps) > len(spec.new_ids)  # tokens after the EOS were accepted, then cut


@pytest.mark.parametrize("kwargs, match", [
    ({"max_ngram": 0}, r"max_ngram \(n-gram size\) must be an int >= 1"),
    ({"k": 0}, r"k \(tokens kept per n-gram\) must be an int >= 1"),
    ({"max_depth": 0}, "max_depth must be an int >= 1"),
    ({"prior": 0.0}, r"prior must be a number in \(0, 1.0\]"),
    ({"prior": 1.5}, "prior must be"),
    ({"prior_weight": -1}, "prior_weight must be"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StandDrafter(**kwargs)


def test_bad_budget_and_missing_begin():
    lm = tiny_lm("llama", seed=0)
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        speculative_generate(lm, [1, 2], "stand", budget=0)
    drafter = get_drafter("stand", max_ngram=3)
    with pytest.raises(RuntimeError, match="call begin"):
        drafter.propose([1, 2], 3)
    drafter.begin(lm, [1, 2], SamplingConfig(0.0))
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        drafter.propose([1, 2], 0)


@pytest.mark.slow
def test_greedy_equals_autoregressive_on_the_default_model():
    spec, ref = greedy_on_default_model(StandDrafter())
    assert spec.new_ids == ref.new_ids and spec.stop_reason == ref.stop_reason
    assert spec.tau > 1.5
    print(f"stand tau on smollm2-135m: {spec.tau:.2f}, forward calls {spec.forward_calls} vs {ref.forward_calls}")
