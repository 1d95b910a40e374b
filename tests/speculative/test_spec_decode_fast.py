"""Fast paths of the decode loop give the same results: argmax greedy walk, chain feeding, TreeAttention wiring,
the cost-aware budget rule (checked by brute force on small cases)."""
import itertools
import random

import pytest
import torch

from workbench.models import tiny_lm
from workbench.speculative import DraftTree, StepRecord, probs_from_logits, speculative_generate
from workbench.speculative.acceptance import AcceptanceTable, table_for
from workbench.speculative.decode import _best_draft_size, _interpolate, _is_chain
from workbench.speculative.drafters import Drafter
from workbench.speculative.verifiers import GreedyVerifier

PROMPT = list(b"the cat sat on the mat, the cat sat on")


def random_tree(rng: random.Random, n: int, vocab: int) -> DraftTree:
    parents = [rng.randrange(-1, i) for i in range(n)]
    return DraftTree([rng.randrange(vocab) for _ in range(n)], parents)


def test_verify_argmax_equals_verify_on_one_hot_distributions():
    rng, verifier = random.Random(0), GreedyVerifier()
    for _ in range(300):
        vocab, n = rng.choice([2, 3, 5]), rng.randrange(0, 8)
        tree = random_tree(rng, n, vocab)
        logits = torch.randn(n + 1, vocab, generator=torch.Generator().manual_seed(rng.randrange(10**6)))
        logits[:, 0] = logits[:, 1]  # ties: the first index wins on both paths
        slow = verifier.verify(tree, probs_from_logits(logits, 0.0))
        fast = verifier.verify_argmax(tree, logits.argmax(-1).tolist())
        assert fast.to_dict() == slow.to_dict()


def test_verify_argmax_checks_its_input():
    with pytest.raises(ValueError, match="n \\+ 1 = 2"):
        GreedyVerifier().verify_argmax(DraftTree.chain([1]), [0])


class WideDrafter(Drafter):
    """Deterministic test drafter: the reference continuation as a chain, or behind a wrong sibling (a tree)."""

    name = "wide_test"

    def __init__(self, prompt_len, reference, tree):
        self.prompt_len, self.reference, self.tree = prompt_len, reference, tree

    def propose(self, context_ids, budget):
        at = len(context_ids) - self.prompt_len
        truth = self.reference[at:at + max(budget - 1, 1)][:budget]
        if not truth:
            return DraftTree.empty()
        if self.tree and budget >= 2:
            paths = [[(truth[0] + 1) % 256], truth[: budget - 1]]
            return DraftTree.from_paths(paths)
        return DraftTree.chain(truth)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("tree", [False, True])
def test_tree_attention_forced_on_cpu_keeps_outputs(arch, tree):
    lm = tiny_lm(arch, seed=0)
    reference = lm.generate(PROMPT, max_new_tokens=12).new_ids
    outs = [speculative_generate(lm, PROMPT, drafter=WideDrafter(len(PROMPT), reference, tree), max_new_tokens=12,
                                 budget=4, tree_attention=forced) for forced in (False, True)]
    assert outs[0].new_ids == outs[1].new_ids == reference
    assert outs[1].settings["tree_attention"] is True
    assert [s.to_dict() for s in outs[0].steps] == [s.to_dict() for s in outs[1].steps]


def test_tree_attention_routes_through_the_op(monkeypatch):
    import workbench.speculative.tree_attention as ta

    calls = []
    real = ta.tree_attention
    monkeypatch.setattr(ta, "tree_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    lm = tiny_lm("llama", seed=0)
    reference = lm.generate(PROMPT, max_new_tokens=6).new_ids
    speculative_generate(lm, PROMPT, drafter=WideDrafter(len(PROMPT), reference, True), max_new_tokens=6,
                         budget=3, tree_attention=True)
    assert len(calls) >= lm.num_layers


def test_chain_fed_causally_gives_the_masked_logits():
    lm = tiny_lm("qwen2", seed=4)
    tree = DraftTree.chain([5, 6, 7, 8])
    cache = lm.new_cache()
    lm.forward(PROMPT[:-1], cache=cache)
    prefix = cache.length
    masked = lm.forward([PROMPT[-1]] + tree.tokens.tolist(), cache=cache.clone(),
                        position_ids=tree.position_ids(prefix, include_root=True),
                        attention_mask=tree.prefix_mask(prefix)).logits
    plain = lm.forward([PROMPT[-1]] + tree.tokens.tolist(), cache=cache.clone()).logits
    torch.testing.assert_close(plain, masked, rtol=1e-5, atol=1e-5)
    assert _is_chain(tree) and not _is_chain(DraftTree([1, 2], [-1, -1])) and _is_chain(DraftTree.empty())


def test_cost_aware_greedy_is_token_identical_and_sampling_runs():
    lm = tiny_lm("llama", seed=1)
    reference = lm.generate(PROMPT, max_new_tokens=16).new_ids
    g = speculative_generate(lm, PROMPT, drafter="prompt_lookup", max_new_tokens=16, budget=6, cost_aware=True)
    assert g.new_ids == reference and g.settings["cost_aware"] is True
    assert all(s.drafted <= 6 for s in g.steps)
    s = speculative_generate(lm, PROMPT, drafter="prompt_lookup", max_new_tokens=8, temperature=0.8, seed=3,
                             budget=6, cost_aware=True)
    assert len(s.new_ids) == 8
    with pytest.raises(ValueError, match="cost_aware"):
        speculative_generate(lm, PROMPT, cost_aware="yes")
    with pytest.raises(ValueError, match="tree_attention"):
        speculative_generate(lm, PROMPT, tree_attention=1)


def brute_best(acceptance, times):
    def rate(k):
        expected = 1 + sum(torch.tensor(acceptance[:d]).prod().item() for d in range(1, k + 1))
        return expected / _interpolate(times, k + 1)
    rates = [rate(k) for k in range(1, len(acceptance) + 1)]
    return 1 + max(range(len(rates)), key=lambda i: (rates[i], -i))


def test_best_draft_size_matches_brute_force():
    rng = random.Random(1)
    for _ in range(200):
        depth = rng.randrange(1, 9)
        acceptance = [rng.choice([0.1, 0.3, 0.6, 0.9]) for _ in range(depth)]
        times = {1: 1.0, 2: 1.0 + rng.random() * 0.3, 4: 1.3 + rng.random(), 8: 2.5 + rng.random() * 2}
        assert _best_draft_size(acceptance, times) == brute_best(acceptance, times)


def test_cost_rule_known_answers():
    flat = {1: 1.0, 2: 1.0, 4: 1.0, 8: 1.0}
    assert _best_draft_size([0.5] * 7, flat) == 7  # free nodes: draft everything
    steep = {1: 1.0, 2: 2.0, 4: 4.0, 8: 8.0}
    assert _best_draft_size([0.9] * 7, steep) == 1  # cost linear in n: never better than one node
    assert _interpolate({1: 1.0, 3: 3.0}, 2) == 2.0 and _interpolate({1: 1.0, 3: 3.0}, 5) == 5.0


def test_acceptance_estimate_known_answer():
    table = AcceptanceTable()
    for depth, accepted in [(3, 0), (3, 2), (2, 2)]:  # the same steps in one pool (key None)
        table.record(None, depth, accepted)
    # depth 1: 3 tried, 2 accepted -> 3/5; depth 2: 2 tried (accepted >= 1), 2 accepted -> 3/4;
    # depth 3: 1 tried (depth >= 3, accepted >= 2), 0 accepted -> 1/3; the key's own: (s + 2 p) / (c + 2)
    pooled = [3 / 5, 3 / 4, 1 / 3]
    own = [(2 + 2 * pooled[0]) / 5, (2 + 2 * pooled[1]) / 4, (0 + 2 * pooled[2]) / 3]
    assert table.estimate(None, 4) == pytest.approx(own + own[-1:])  # depth 4 unseen: the key's depth 3
    assert table.estimate("unseen key", 4) == pytest.approx(pooled + pooled[-1:])  # no own counts: pooled
    assert AcceptanceTable().estimate(3, 2) == [0.5, 0.5]


def test_acceptance_by_key_separates_confident_drafts():
    table = AcceptanceTable()
    for _ in range(20):
        table.record(3, 4, 4)  # long matches: every token accepted
        table.record(1, 1, 0)  # one-token matches: rejected
    assert table.estimate(3, 4)[0] > 0.9 and table.estimate(1, 1)[0] < 0.15
    times = {n: 1.0 + 0.1 * (n - 1) for n in range(1, 18)}
    assert _best_draft_size(table.estimate(3, 16), times) >= 8 and _best_draft_size(table.estimate(1, 16), times) == 1


def test_draft_keys_measure_the_agreement_with_earlier_text_and_tables_persist_per_lm():
    from workbench.speculative import get_drafter

    drafter = get_drafter("prompt_lookup")
    assert drafter.draft_key([1, 2, 3, 9, 1, 2, 3]) == 3 and drafter.draft_key([5, 6, 7]) == 0
    # the 3-gram (1, 2, 3) also agrees one token further back (7): key 4; capped at max(key_cap, n)
    agree = [7, 1, 2, 3, 9, 8, 7, 1, 2, 3]
    assert drafter.draft_key(agree) == 4 and get_drafter("prompt_lookup", key_cap=3).draft_key(agree) == 3
    assert get_drafter("prompt_lookup", key_cap=1).draft_key(agree) == 3
    long = [5, 6, 7, 8, 1, 2, 3, 4, 9, 5, 6, 7, 8, 1, 2, 3, 4]
    assert drafter.draft_key(long) == 8 and get_drafter("prompt_lookup", key_cap=20).draft_key(long) == 8
    assert get_drafter("prompt_lookup", key_cap=5).draft_key(long) == 5
    expected = [[9, 5, 6, 7, 8, 1, 2, 3, 4]]  # the key never changes the draft
    assert drafter.continuations(long) == get_drafter("prompt_lookup", key_cap=3).continuations(long) == expected
    # Lookahead: the longest suffix (n <= m <= max(key_cap, n), m < ngram) the trie holds with a continuation
    assert get_drafter("lookahead").draft_key(long) == 8 and get_drafter("lookahead", key_cap=20).draft_key(long) == 8
    assert get_drafter("lookahead", key_cap=5).draft_key(long) == 5
    assert get_drafter("lookahead", key_cap=2).draft_key(long) == 4  # the matched length (max_match 4)
    assert get_drafter("lookahead").draft_key([5, 6, 7]) == 0
    trees = [get_drafter("lookahead", key_cap=c).propose(long, 8) for c in (2, 8)]
    assert [t.tokens.tolist() for t in trees[1:]] == [trees[0].tokens.tolist()] and len(trees[0]) == 6
    assert [t.parents.tolist() for t in trees[1:]] == [trees[0].parents.tolist()]
    assert drafter.draft_key([4, 1, 5, 1]) == 1 and drafter.continuations([4, 1, 5, 1]) == [[5, 1]]
    assert get_drafter("lookahead").draft_key([1, 2, 3, 9, 1, 2, 3]) >= 3
    lm = tiny_lm("llama", seed=3)
    speculative_generate(lm, PROMPT, drafter="prompt_lookup", max_new_tokens=8, budget=4, cost_aware=True)
    table = table_for(lm, "prompt_lookup")
    assert table is table_for(lm, "prompt_lookup") and sum(c[1][0] for c in table.counts.values()) > 0


class EmptyDrafter(Drafter):
    name = "empty_test"

    def propose(self, context_ids, budget):
        return DraftTree.empty()


def test_forward_times_are_calibrated_once_and_not_moved_by_the_steps():
    from workbench.speculative.decode import _FORWARD_TIMES
    from workbench.speculative.target_forward import INPUT_MAJOR_FROM

    lm = tiny_lm("llama", seed=2)
    speculative_generate(lm, PROMPT, drafter=EmptyDrafter(), max_new_tokens=3, budget=5, cost_aware=True)
    assert list(_FORWARD_TIMES[lm]) == [(True, INPUT_MAJOR_FROM)]  # CPU: the GQA + input-major path
    times = _FORWARD_TIMES[lm][(True, INPUT_MAJOR_FROM)]
    assert sorted(times) == [1, 2, 3, 4, 5, 6]
    times.update({n: 1e9 for n in times})
    calls = lm.counters.forward_calls
    g = speculative_generate(lm, PROMPT, drafter=EmptyDrafter(), max_new_tokens=3, budget=5, cost_aware=True)
    assert lm.counters.forward_calls - calls == 1 + len(g.steps)  # prefill + steps: no second calibration
    assert set(times.values()) == {1e9}  # the steps' own forwards do not bias the table (decode.py docstring)
    speculative_generate(lm, PROMPT, drafter=EmptyDrafter(), max_new_tokens=3, budget=5, cost_aware=True,
                         input_major=False)
    assert set(_FORWARD_TIMES[lm]) == {(True, INPUT_MAJOR_FROM), (True, None)}  # one table per path
    with pytest.raises(ValueError, match="input_major"):
        speculative_generate(lm, PROMPT, input_major="yes")
