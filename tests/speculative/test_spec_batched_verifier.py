"""The speculative_sampling verifier's batched path (one `rejection_sampling` op call per step, as used for CUDA
tensors), run here on the CPU with batched=True: its emitted law is exact (integration over the drafts and the
uniforms, float64, 1e-9), and the default on CPU tensors stays the level-by-level walk."""
from itertools import pairwise

import numpy as np
import pytest
import torch
from spec_toy import ToyModel

from workbench.speculative import DraftTree, TorchRandom
from workbench.speculative.rng import ReplayRandom
from workbench.speculative.verifiers.speculative_sampling import (
    SpeculativeSamplingVerifier,
)

TOL = 1e-9


def _pieces(*distributions) -> list[tuple[float, float]]:
    """(midpoint, length) of [0, 1) cut at every CDF value of the given weight vectors."""
    cuts = {0.0, 1.0}
    for w in distributions:
        w = np.asarray(w, dtype=np.float64)
        if w.sum() > 0:
            cuts.update(c for c in (np.cumsum(w) / w.sum()).tolist() if 0 < c < 1)
    points = sorted(cuts)
    return [((a + b) / 2, b - a) for a, b in pairwise(points) if b > a]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_chain_of_one_is_lossless_exactly(seed):
    vocab, prefix = 5, (seed,)
    target = ToyModel(vocab, seed)
    draft = ToyModel(vocab, 100 + seed, base=ToyModel(vocab, seed), noise=1.0, top_k=3)
    p0, q0 = target.probs(prefix).numpy(), draft.probs(prefix).numpy()
    verifier = SpeculativeSamplingVerifier(batched=True)
    law: dict[tuple[int, ...], float] = {}
    for x in range(vocab):
        if q0[x] == 0:
            continue
        p1 = target.probs(prefix + (x,)).numpy()
        tree = DraftTree.chain([x], torch.tensor(q0)[None])
        probs = torch.tensor(np.stack([p0, p1]))
        accept = min(1.0, p0[x] / q0[x])
        for ua, la in _pieces([accept, 1 - accept]):  # cut at p(x)/q(x)
            for us0, ls0 in _pieces(p0, np.clip(p0 - q0, 0, None)):
                for us1, ls1 in _pieces(p1):
                    result = verifier.verify_uniforms(tree, probs, None, torch.tensor([ua, 0.5]),
                                                      torch.tensor([us0, us1], dtype=torch.float64))
                    key = tuple(result.tokens)
                    law[key] = law.get(key, 0.0) + q0[x] * la * ls0 * ls1
    assert sum(law.values()) == pytest.approx(1.0, abs=TOL)
    first = np.zeros(vocab)
    for tokens, prob in law.items():
        first[tokens[0]] += prob
    assert np.abs(first - p0).max() < TOL  # the first token is distributed as the target's
    for tokens, prob in law.items():  # after an accepted x the bonus follows the target at (prefix, x)
        if len(tokens) == 2:
            x, z = tokens
            expected = min(p0[x], q0[x]) * float(target.probs(prefix + (x,))[z])
            assert prob == pytest.approx(expected, abs=TOL)


def test_pieces_of_the_acceptance_uniform():
    # p/q = 0.25 < 1: accept on [0, 0.25), reject on [0.25, 1)
    assert _pieces([0.25, 0.75]) == [(0.125, 0.25), (0.625, 0.75)]
    assert _pieces([1.0, 0.0]) == [(0.5, 1.0)]


def test_batched_verify_draws_from_the_generator_and_returns_a_valid_result():
    tree = DraftTree.chain([1, 2, 3], torch.full((3, 6), 1 / 6, dtype=torch.float64))
    target = torch.softmax(torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64), -1)
    verifier = SpeculativeSamplingVerifier(batched=True)
    results = [verifier.verify(tree, target, generator=torch.Generator().manual_seed(s)) for s in range(40)]
    again = [verifier.verify(tree, target, generator=torch.Generator().manual_seed(s)) for s in range(40)]
    assert [r.to_dict() for r in results] == [r.to_dict() for r in again]  # reproducible per seed
    for r in results:
        assert r.accepted_nodes == list(range(r.num_accepted)) and r.accepted_tokens == [1, 2, 3][: r.num_accepted]
    assert len({r.num_accepted for r in results}) > 1
    with pytest.raises(ValueError, match="draws its uniforms from a torch.Generator"):
        verifier.verify(tree, target, generator=ReplayRandom([]))
    with pytest.raises(ValueError, match="target_probs must have shape"):
        verifier.verify(tree, target[:2])


def test_cpu_tensors_keep_the_level_by_level_walk_by_default():
    tree = DraftTree.chain([1, 2], torch.full((2, 4), 0.25, dtype=torch.float64))
    target = torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 3, dtype=torch.float64)
    for seed in range(10):
        default = SpeculativeSamplingVerifier().verify(tree, target, generator=torch.Generator().manual_seed(seed))
        walk = SpeculativeSamplingVerifier(batched=False).verify(tree, target,
                                                                 generator=TorchRandom(torch.Generator().manual_seed(seed)))
        assert default.to_dict() == walk.to_dict()
