from collections import Counter

import pytest
import torch

from workbench.speculative import TorchRandom, enumerate_outcomes
from workbench.speculative.rng import as_random_source


def program(rng):
    """Flip a 0.3-coin; heads: draw from weights [1, 0, 3]; tails: flip a 0.5-coin twice."""
    if rng.bernoulli(0.3):
        return ("heads", rng.categorical(torch.tensor([1.0, 0.0, 3.0])))
    return ("tails", rng.bernoulli(0.5), rng.bernoulli(0.5))


def test_enumeration_gives_hand_computed_probabilities():
    outcomes = {value: prob for prob, value in enumerate_outcomes(program)}
    expected = {("heads", 0): 0.3 * 0.25, ("heads", 2): 0.3 * 0.75, ("tails", True, True): 0.7 * 0.25,
                ("tails", True, False): 0.7 * 0.25, ("tails", False, True): 0.7 * 0.25,
                ("tails", False, False): 0.7 * 0.25}
    assert outcomes.keys() == expected.keys()
    for key, prob in expected.items():
        assert outcomes[key] == pytest.approx(prob, abs=1e-15)


def test_certain_events_do_not_branch():
    assert enumerate_outcomes(lambda rng: (rng.bernoulli(1.5), rng.bernoulli(-1.0))) == [(1.0, (True, False))]


def test_torch_random_matches_enumeration_by_monte_carlo():
    rng = TorchRandom(torch.Generator().manual_seed(0))
    n = 20000
    counts = Counter(program(rng) for _ in range(n))
    for prob, value in enumerate_outcomes(program):
        sigma = (prob * (1 - prob) / n) ** 0.5
        assert abs(counts[value] / n - prob) < 5 * sigma


def test_torch_random_is_reproducible():
    runs = []
    for _ in range(2):
        rng = TorchRandom(torch.Generator().manual_seed(3))
        runs.append([program(rng) for _ in range(50)])
    assert runs[0] == runs[1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        as_random_source(42)
    with pytest.raises(ValueError, match="positive sum"):
        enumerate_outcomes(lambda rng: rng.categorical(torch.zeros(3)))
