"""The offline replay reproduces live greedy speculative decoding step by step (the known answer: a live
`speculative_generate` run on a tiny seeded model), and the oracle is the least-cost draft-length schedule
(checked against every schedule by brute force)."""
import itertools

import pytest

from workbench.models import tiny_lm
from workbench.speculative import DraftTree, get_drafter, speculative_generate
from workbench.speculative import decode
from workbench.speculative.replay import (
    CostAware,
    DraftLengthPolicy,
    FixedLength,
    accepted_on_truth,
    replay,
    replay_oracle,
)

PROMPT = list(b"the cat sat on the mat, the cat sat on")
NEW = 40
# fake forward times for the cost rule (the decode loop takes them as calibrated and never updates them)
TIMES = {n: 1e-7 * (1.0 + 0.02 * (n - 1) + 0.01 * (n - 1) ** 2) for n in range(1, 18)}


@pytest.fixture(scope="module")
def lm_truth():
    lm = tiny_lm("llama", seed=0)
    return lm, lm.generate(PROMPT, max_new_tokens=NEW).new_ids


def summary(steps):
    return [(s.drafted, s.accepted) for s in steps]


@pytest.mark.parametrize("drafter", ["prompt_lookup", "lookahead"])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_fixed_length_replay_equals_live_run(lm_truth, drafter, k):
    lm, truth = lm_truth
    live = speculative_generate(lm, PROMPT, drafter=drafter, max_new_tokens=NEW, budget=k)
    assert live.new_ids == truth
    replayed = replay(drafter, FixedLength(k), PROMPT, truth, budget=16, max_new_tokens=NEW)
    assert summary(replayed.steps) == [(s.drafted, s.accepted) for s in live.steps]
    assert sum(s.accepted for s in live.steps) > 0  # the case is not trivial
    assert replayed.tau == pytest.approx(live.tau)


@pytest.mark.parametrize("drafter", ["prompt_lookup", "lookahead"])
def test_cost_aware_replay_equals_live_run(drafter):
    lm = tiny_lm("llama", seed=0)  # a fresh LM: an empty acceptance table, as the replay's
    truth = lm.generate(PROMPT, max_new_tokens=NEW).new_ids
    for path in itertools.product([False, True], [None, 4]):
        decode._FORWARD_TIMES.setdefault(lm, {})[path] = dict(TIMES)
    live = speculative_generate(lm, PROMPT, drafter=drafter, max_new_tokens=NEW, budget=16, cost_aware=True)
    assert live.new_ids == truth
    replayed = replay(drafter, CostAware(TIMES), PROMPT, truth, budget=16, max_new_tokens=NEW)
    assert summary(replayed.steps) == [(s.drafted, s.accepted) for s in live.steps]
    assert len({s.drafted for s in live.steps}) > 2  # the rule really chose different sizes


class Scripted(DraftLengthPolicy):
    name = "scripted"

    def __init__(self, sizes):
        self.sizes = list(sizes)

    def choose(self, key, step_budget):
        return min(self.sizes.pop(0), step_budget)


@pytest.mark.parametrize("drafter", ["prompt_lookup", "lookahead"])
def test_oracle_is_the_cheapest_schedule_by_brute_force(lm_truth, drafter):
    _, truth = lm_truth
    prompt, short = PROMPT + truth[:18], truth[18:25]
    oracle = replay_oracle(drafter, TIMES, prompt, short, budget=2)
    every = [replay(drafter, Scripted(s), prompt, short, budget=2).forward_seconds(TIMES)
             for s in itertools.product(range(3), repeat=len(short))]
    assert oracle.forward_seconds(TIMES) == pytest.approx(min(every), rel=1e-12)
    assert sum(s.emitted for s in oracle.steps) == len(short)
    assert max(s.accepted for s in oracle.steps) > 0


@pytest.mark.parametrize("drafter", ["prompt_lookup", "lookahead"])
def test_oracle_beats_every_fixed_length_and_the_cost_rule(lm_truth, drafter):
    _, truth = lm_truth
    oracle = replay_oracle(drafter, TIMES, PROMPT, truth).speedup(TIMES)
    for policy in [FixedLength(k) for k in (1, 2, 4, 8, 16)] + [CostAware(TIMES)]:
        assert oracle >= replay(drafter, policy, PROMPT, truth).speedup(TIMES) - 1e-12


def test_speedup_is_tokens_times_ar_cost_over_forward_costs(lm_truth):
    _, truth = lm_truth
    r = replay("prompt_lookup", FixedLength(2), PROMPT, truth)
    by_hand = len(truth) * TIMES[1] / sum(TIMES[s.drafted + 1] for s in r.steps)
    assert r.speedup(TIMES) == pytest.approx(by_hand)
    assert r.speedup(TIMES, ar_cost=2 * TIMES[1], prefill=1e-6) == pytest.approx(
        (1e-6 + 2 * len(truth) * TIMES[1]) / (1e-6 + sum(TIMES[s.drafted + 1] for s in r.steps)))


def test_accepted_on_truth_follows_the_true_branch_of_a_tree():
    tree = DraftTree.from_paths([[5, 6], [7, 8, 9], [7, 8, 4]])  # truth continues 7 8 4 ...
    kept = accepted_on_truth(tree, [0, 7, 8, 4, 1], position=1)
    assert [tree.token(i) for i in kept] == [7, 8, 4]
    assert accepted_on_truth(tree, [7, 8], position=0) == accepted_on_truth(tree, [7, 8, 9, 9], position=0)[:2]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="token_recycling.*replayable drafters: prompt_lookup, lookahead"):
        replay("token_recycling", FixedLength(2), PROMPT, [1, 2])
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= len\\(truth\\) = 2"):
        replay("prompt_lookup", FixedLength(2), PROMPT, [1, 2], max_new_tokens=1)
    with pytest.raises(ValueError, match="truth"):
        replay_oracle("prompt_lookup", TIMES, PROMPT, [])
    with pytest.raises(ValueError, match="budget"):
        replay("prompt_lookup", FixedLength(2), PROMPT, [1, 2], budget=0)
    with pytest.raises(ValueError, match="budget"):
        FixedLength(0)
