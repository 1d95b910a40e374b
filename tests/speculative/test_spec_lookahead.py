"""Lookahead (trie retrieval): n-gram counts equal brute-force counts, frequency-ranked multi-branch drafts, corpus
and verified outputs indexed, greedy output identical to LM.generate (EOS inside a draft included)."""
import random
from collections import Counter

import pytest
import torch
from spec_draft_helpers import greedy_on_default_model

from workbench.models import tiny_lm
from workbench.speculative import (
    DraftTree,
    SamplingConfig,
    VerifyResult,
    speculative_generate,
)
from workbench.speculative.drafters import get_drafter
from workbench.speculative.drafters.lookahead import LookaheadDrafter, NGramTrie

ARCHS = ["llama", "qwen2", "gemma3"]


def brute_force_counts(sequences, depth):
    counts = Counter()
    for seq in sequences:
        for i in range(len(seq)):
            for n in range(1, depth + 1):
                if i + n <= len(seq):
                    counts[tuple(seq[i:i + n])] += 1
    return dict(counts)


def test_trie_counts_equal_brute_force_ngram_counts():
    rng = random.Random(0)
    seqs = [[rng.randrange(4) for _ in range(rng.randrange(1, 30))] for _ in range(5)]
    trie = NGramTrie(4)
    for s in seqs:
        trie.add(s)
    assert trie.items() == brute_force_counts(seqs, 4)
    assert trie.size == len(trie.items())
    # one sequence grown token by token gives the same counts as indexing it whole
    grown = NGramTrie(3)
    grown.start()
    for t in seqs[0]:
        grown.append(t)
    assert grown.items() == brute_force_counts([seqs[0]], 3)
    assert trie.count([9]) == 0 and trie.find([9]) is None


def test_frequency_ranked_branches_for_a_known_context():
    drafter = LookaheadDrafter(ngram=4, max_match=2)
    #          0  1  2  3  4  5  6  7  8  9 10 11 12
    context = [1, 2, 3, 9, 1, 2, 4, 1, 2, 3, 5, 1, 2]
    tree = drafter.propose(context, 10)
    # suffix [1, 2] continues with 3 (twice: [1,2,3,9], [1,2,3,5]) and 4 once ([1,2,4,1]); windows end at 4 tokens
    assert drafter.match(context)[0] == 2
    assert tree.tokens.tolist() == [3, 4, 9, 5, 1] and tree.parents.tolist() == [-1, -1, 0, 0, 1]
    assert drafter.propose(context, 2).tokens.tolist() == [3, 4]
    assert drafter.propose(context, 1).token_paths() == [[3]]
    # no suffix of length <= max_match with a continuation: nothing drafted
    assert len(LookaheadDrafter(ngram=4, max_match=2).propose([1, 2, 3, 4], 8)) == 0


def test_longest_suffix_wins():
    drafter = LookaheadDrafter(ngram=5, max_match=3)
    context = [7, 1, 2, 8, 8, 1, 2, 6, 6, 6, 7, 1, 2]
    # [7, 1, 2] occurred once (followed by 8, 8); [1, 2] also by 6 6 6: the 3-gram match is used
    assert drafter.propose(context, 10).token_paths() == [[8, 8]]
    assert drafter.match(context)[0] == 3


def test_corpus_texts_and_ids_and_verified_outputs_are_indexed():
    lm = tiny_lm("llama", seed=0)
    drafter = LookaheadDrafter(ngram=4, max_match=2, corpus=["xyzw", [50, 51, 52, 53]])
    drafter.begin(lm, [1, 2], SamplingConfig(0.0))
    counts = drafter.trie.items()
    assert counts[tuple(b"xyz")] == 1 and counts[(50, 51, 52, 53)] == 1 and counts[(1, 2)] == 1
    assert drafter.propose([9, 50, 51], 8).token_paths() == [[52, 53]]
    assert drafter.propose([9, 1, 2, 9, ord("x")], 8).token_paths() == [list(b"yzw")]
    # the verified output extends the current sequence: the new n-grams are counted
    drafter.begin(lm, [60, 61], SamplingConfig(0.0))
    tree = drafter.propose([60, 61], 4)
    assert len(tree) == 0
    drafter.update(tree, VerifyResult([], [], 62), torch.zeros(1, 257))
    drafter.update(DraftTree.empty(), VerifyResult([], [], 60), torch.zeros(1, 257))
    assert drafter.trie.count([60, 61, 62, 60]) == 1 and drafter.trie.count([61, 62, 60]) == 1
    assert drafter.propose([60, 61, 62, 60], 4).token_paths() == [[61, 62, 60]]
    with pytest.raises(ValueError, match="a corpus of texts needs the target LM"):
        LookaheadDrafter(corpus=["abc"]).propose([1, 2], 3)


def test_trie_persists_across_generations_unless_reset():
    lm = tiny_lm("llama", seed=0)
    kept = LookaheadDrafter()
    speculative_generate(lm, [1, 2, 3], kept, max_new_tokens=6)
    size = kept.trie.size
    kept.begin(lm, [1], SamplingConfig(0.0))
    assert kept.trie.size >= size
    fresh = LookaheadDrafter(reset_each_generation=True)
    speculative_generate(lm, [1, 2, 3], fresh, max_new_tokens=6)
    fresh.begin(lm, [1], SamplingConfig(0.0))
    assert fresh.trie.items() == {(1,): 1}


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_autoregressive(arch):
    lm = tiny_lm(arch, seed=0)
    for prompt in ([1, 2, 3, 4, 5, 1, 2, 3], list(b"the cat sat on the mat, the cat")):
        ref = lm.generate(prompt, max_new_tokens=40)
        drafter = LookaheadDrafter(ngram=6, max_match=3)
        for budget in (3, 12):
            spec = speculative_generate(lm, prompt, drafter, max_new_tokens=40, budget=budget)
            assert spec.new_ids == ref.new_ids and spec.stop_reason == ref.stop_reason and spec.text == ref.text
            assert spec.verifier == "greedy" and all(s.drafted <= budget for s in spec.steps)
    assert spec.tau > 1.5  # the second run retrieves the first run's output from the trie


@pytest.mark.parametrize("arch", ARCHS)
def test_eos_inside_a_draft(arch):
    lm = tiny_lm(arch, seed=2)
    prompt = [3, 1, 4, 1, 5]
    reference = lm.generate(prompt, max_new_tokens=40).new_ids
    drafter = LookaheadDrafter()
    speculative_generate(lm, prompt, drafter, max_new_tokens=40)  # the trie now holds prompt + reference
    k = next(i for i in range(10, 40) if reference[i] not in reference[:i])
    lm.model.generation_config.eos_token_id = reference[k]
    ref = lm.generate(prompt, max_new_tokens=40)
    assert ref.stop_reason == "eos" and len(ref.new_ids) == k + 1
    spec = speculative_generate(lm, prompt, drafter, max_new_tokens=40, budget=8)
    assert spec.new_ids == ref.new_ids and spec.stop_reason == "eos" and spec.text == ref.text
    assert sum(s.emitted for s in spec.steps) > len(spec.new_ids)  # tokens after the EOS were accepted, then cut


def test_drafts_are_valid_trees_within_the_budget():
    rng = random.Random(1)
    drafter = LookaheadDrafter(ngram=5, max_match=3)
    context = [rng.randrange(5) for _ in range(200)]
    for end in range(20, 200, 7):
        budget = rng.randrange(1, 12)
        tree = drafter.propose(context[:end], budget)
        assert isinstance(tree, DraftTree) and len(tree) <= budget and tree.max_depth <= 5 - 1
        for node in [-1] + list(range(len(tree))):
            kids = [tree.token(c) for c in tree.children(node)]
            assert len(set(kids)) == len(kids)
        seq = context[:end]
        for path in tree.token_paths():  # every drafted path continues an n-gram that occurred in the context
            n = drafter.match(seq)[0]
            assert drafter.trie.count(seq[len(seq) - n:] + path) >= 1


@pytest.mark.parametrize("kwargs, match", [
    ({"ngram": 0}, r"ngram \(longest n-gram stored"),
    ({"ngram": 1}, "ngram .* must be an int >= 2"),
    ({"max_match": 0}, "max_match must be an int >= 1"),
    ({"min_match": 0}, "min_match must be an int >= 1"),
    ({"min_match": 3, "max_match": 2}, r"min_match \(3\) must be <= max_match \(2\)"),
    ({"ngram": 4, "max_match": 4}, r"max_match \(4\) must be < ngram \(4\)"),
    ({"corpus": "abc"}, "corpus must be a list"),
    ({"corpus": [[1, -2]]}, r"corpus\[0\] must be a text or a list of token ids"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LookaheadDrafter(**kwargs)


def test_bad_budget():
    lm = tiny_lm("llama", seed=0)
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        LookaheadDrafter().propose([1, 2, 1], 0)
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        speculative_generate(lm, [1, 2], "lookahead", budget=0)
    assert isinstance(get_drafter("lookahead", ngram=5), LookaheadDrafter)


@pytest.mark.slow
def test_greedy_equals_autoregressive_on_the_default_model():
    spec, ref = greedy_on_default_model(LookaheadDrafter())
    assert spec.new_ids == ref.new_ids and spec.stop_reason == ref.stop_reason
    assert spec.tau > 1.5
    print(f"lookahead tau on smollm2-135m: {spec.tau:.2f}, forward calls {spec.forward_calls} vs {ref.forward_calls}")
