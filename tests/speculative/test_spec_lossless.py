"""Losslessness of every sampling verifier by exact enumeration (float64, tolerance 1e-9).

For a drafting scheme and a verifier: every possible draft tree (with its probability under the scheme) times
every possible outcome of the verifier's random choices (the verifier's own code run under `enumerate_outcomes`)
gives the exact law of the emitted tokens. Lossless means: the first token is distributed as the target's next
token, and, with decoding continued by the target whenever a step emitted fewer tokens, the first L tokens are
jointly distributed as the target's, for every L up to the tree depth + 1. The expected values come from the toy
target directly (products of its conditionals), never from the verifiers.
"""
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from spec_toy import (
    ToyModel,
    completed_joint,
    draft_iid_sequences,
    draft_topk_tree,
    draft_without_replacement,
    target_joint,
    target_rows,
)

from workbench.speculative import TorchRandom, enumerate_outcomes, get_verifier
from workbench.speculative.verifiers.rsd import RecursiveRejectionVerifier
from workbench.speculative.verifiers.speculative_sampling import (
    SpeculativeSamplingVerifier,
)

TOL = 1e-9
SETTINGS = {"plain": {}, "t0.7-topk5": {"temperature": 0.7, "top_k": 5}, "t1.3-topp0.8": {"temperature": 1.3, "top_p": 0.8}}


def models(vocab: int, seed: int, settings: dict, draft_top_k: int | None = None):
    target = ToyModel(vocab, seed, **settings)
    draft_settings = dict(settings)
    if draft_top_k is not None:  # a narrower draft: fewer possible drafts, and target mass outside its support
        draft_settings["top_k"] = min(draft_top_k, settings.get("top_k") or draft_top_k)
    draft = ToyModel(vocab, 1000 + seed, base=ToyModel(vocab, seed), noise=1.0, **draft_settings)
    return target, draft


def emitted_law(verifier_name, drafting, target: ToyModel, prefix) -> dict[tuple[int, ...], float]:
    """Exact law of the emitted tokens: every draft (with its probability) times every verifier outcome."""
    verifier = get_verifier(verifier_name)
    law: dict[tuple[int, ...], float] = defaultdict(float)
    for draft_prob, tree in enumerate_outcomes(drafting):
        for tokens, prob in verifier.output_distribution(tree, target_rows(target, prefix, tree)).items():
            law[tokens] += draft_prob * prob
    return dict(law)


def assert_lossless(law, target, prefix, max_len):
    assert sum(law.values()) == pytest.approx(1.0, abs=TOL)
    for length in range(1, max_len + 1):
        error = np.abs(completed_joint(law, target, prefix, length) - target_joint(target, prefix, length)).max()
        assert error < TOL, f"first {length} tokens deviate from the target by {error:.3g}"


# ---- one level (the rule itself) at V = 16 ---------------------------------------------------------------------

@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_speculative_sampling_one_token(seed, setting):
    target, draft = models(16, seed, SETTINGS[setting])
    prefix = (seed,)
    law = emitted_law("speculative_sampling", lambda rng: draft_iid_sequences(draft, prefix, 1, 1, rng), target, prefix)
    assert_lossless(law, target, prefix, 2)


@pytest.mark.parametrize("k, draft_top_k", [(2, None), (3, 7), (4, 5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_rsd_siblings_without_replacement(seed, k, draft_top_k):
    target, draft = models(16, seed, {}, draft_top_k)
    prefix = (seed,)
    shape = [[] for _ in range(k)]
    law = emitted_law("rsd", lambda rng: draft_without_replacement(draft, prefix, shape, rng), target, prefix)
    assert_lossless(law, target, prefix, 2)


@pytest.mark.parametrize("k, draft_top_k", [(1, None), (2, None), (3, 5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_spectr_k_iid_drafts(seed, k, draft_top_k):
    target, draft = models(16, seed, {}, draft_top_k)
    prefix = (seed,)
    law = emitted_law("spectr", lambda rng: draft_iid_sequences(draft, prefix, k, 1, rng), target, prefix)
    assert_lossless(law, target, prefix, 2)


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("width", [1, 2, 5, 16])
def test_deterministic_candidates(width, setting):
    target, draft = models(16, 3, SETTINGS[setting])
    prefix = (2, 7)
    law = emitted_law("deterministic_tree", lambda rng: draft_topk_tree(draft, prefix, [[] for _ in range(width)]),
                      target, prefix)
    assert_lossless(law, target, prefix, 2)


# ---- whole trees of depth 2-3 at V = 8 -------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["plain", "t0.7-topk5"])
def test_speculative_sampling_chain_of_three(setting):
    target, draft = models(8, 5, SETTINGS[setting])
    prefix = (1,)
    law = emitted_law("speculative_sampling", lambda rng: draft_iid_sequences(draft, prefix, 1, 3, rng), target, prefix)
    assert_lossless(law, target, prefix, 4)


@pytest.mark.parametrize("shape, draft_top_k, depth", [
    ([[[]], []], None, 2),             # two siblings, the first with a child
    ([[[], []], [[]]], 4, 2),          # two siblings with two and one children
    ([[[[]]], []], 5, 3),              # depth 3 under the first sibling
])
def test_rsd_trees(shape, draft_top_k, depth):
    target, draft = models(8, 6, {}, draft_top_k)
    prefix = (4,)
    law = emitted_law("rsd", lambda rng: draft_without_replacement(draft, prefix, shape, rng), target, prefix)
    assert_lossless(law, target, prefix, depth + 1)


@pytest.mark.parametrize("k, depth, draft_top_k", [(2, 2, 4), (3, 2, 2), (2, 3, 2)])  # narrow drafts: duplicates
def test_spectr_sequences(k, depth, draft_top_k):
    target, draft = models(8, 7, {}, draft_top_k)
    prefix = (0,)
    law = emitted_law("spectr", lambda rng: draft_iid_sequences(draft, prefix, k, depth, rng), target, prefix)
    assert_lossless(law, target, prefix, depth + 1)


@pytest.mark.parametrize("vocab", [8, 16])
@pytest.mark.parametrize("setting", SETTINGS)
def test_deterministic_tree_depth_three(vocab, setting):
    target, draft = models(vocab, 8, SETTINGS[setting])
    prefix = (3, 1)
    shape = [[[[], []], [[]]], [[[]]], []]
    law = emitted_law("deterministic_tree", lambda rng: draft_topk_tree(draft, prefix, shape), target, prefix)
    assert_lossless(law, target, prefix, 4)


# ---- the criterion has teeth ------------------------------------------------------------------------------------

class ResampleFromTarget(SpeculativeSamplingVerifier):
    """A classic mistake: after a rejection, draw from p instead of the residual norm(max(0, p - q))."""

    name = "wrong_residual"

    def select(self, p, q, candidates, rng):
        if candidates and not rng.bernoulli(float(p[candidates[0]] / q[candidates[0]])):
            return None, rng.categorical(p)
        return (0, candidates[0]) if candidates else (None, rng.categorical(p))


class KeepDraftAfterRejection(RecursiveRejectionVerifier):
    """Another mistake: RSD without renormalising q over the siblings not yet rejected."""

    name = "wrong_rsd"

    def select(self, p, q, candidates, rng):
        for j, x in enumerate(candidates):
            if rng.bernoulli(float(p[x] / q[x])):
                return j, x
            residual = (p - q).clamp_min(0)
            p = residual / residual.sum()
        return None, rng.categorical(p)


def law_of(verifier, drafting, target, prefix):
    law: dict = defaultdict(float)
    for draft_prob, tree in enumerate_outcomes(drafting):
        for tokens, prob in verifier.output_distribution(tree, target_rows(target, prefix, tree)).items():
            law[tokens] += draft_prob * prob
    return law


def test_wrong_rules_are_detected():
    target, draft = models(8, 9, {})
    prefix = (2,)
    law = law_of(ResampleFromTarget(), lambda rng: draft_iid_sequences(draft, prefix, 1, 2, rng), target, prefix)
    assert np.abs(completed_joint(law, target, prefix, 1) - target_joint(target, prefix, 1)).max() > 1e-3
    unrelated = ToyModel(8, 77)  # a draft far from the target, so that rejections are frequent
    law = law_of(KeepDraftAfterRejection(), lambda rng: draft_without_replacement(unrelated, prefix, [[], []], rng),
                 target, prefix)
    assert np.abs(completed_joint(law, target, prefix, 1) - target_joint(target, prefix, 1)).max() > 1e-3


# ---- the sampling implementation (torch.Generator) against the enumeration ------------------------------------

MONTE_CARLO = {
    "speculative_sampling": lambda d, prefix, rng: draft_iid_sequences(d, prefix, 1, 2, rng),
    "rsd": lambda d, prefix, rng: draft_without_replacement(d, prefix, [[[]], [[]]], rng),
    "spectr": lambda d, prefix, rng: draft_iid_sequences(d, prefix, 2, 2, rng),
    "deterministic_tree": lambda d, prefix, rng: draft_topk_tree(d, prefix, [[[]], [[]]]),
}


@pytest.mark.parametrize("name", MONTE_CARLO)
def test_seeded_sampling_matches_the_exact_law(name):
    target, draft = models(8, 10, {}, 4)
    prefix = (5,)
    drafting = MONTE_CARLO[name]
    law = emitted_law(name, lambda rng: drafting(draft, prefix, rng), target, prefix)
    exact = Counter()
    for tokens, prob in law.items():
        exact[tokens[:2]] += prob
    rng = TorchRandom(torch.Generator().manual_seed(0))
    verifier = get_verifier(name)
    n = 3000
    counts = Counter()
    for _ in range(n):
        tree = drafting(draft, prefix, rng)
        counts[tuple(verifier.verify(tree, target_rows(target, prefix, tree), generator=rng).tokens[:2])] += 1
    assert set(counts) <= set(exact)
    for key, prob in exact.items():
        sigma = (prob * (1 - prob) / n) ** 0.5
        assert abs(counts[key] / n - prob) < 5 * sigma + 1e-3, key
