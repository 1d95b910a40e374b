"""Next-token distributions against brute-force references written from the definitions."""
from __future__ import annotations

import math

import pytest
import torch

from workbench.models.sampling import make_generator, next_token_probs, sample

LOGITS = torch.tensor([2.0, -1.0, 0.5, 3.0, 0.0, 1.5])


def brute_force(logits: list[float], temperature: float, top_k, top_p) -> list[float]:
    """Sort by probability, keep the top k, keep the shortest prefix whose mass reaches p, renormalize."""
    weights = [math.exp(x / temperature) for x in logits]
    total = sum(weights)
    probs = [w / total for w in weights]
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    keep = order[: top_k or len(order)]
    kept_total = sum(probs[i] for i in keep)
    probs = [probs[i] / kept_total if i in keep else 0.0 for i in range(len(probs))]
    if top_p is not None:
        chosen, mass = [], 0.0
        for i in sorted(keep, key=lambda i: -probs[i]):
            chosen.append(i)
            mass += probs[i]
            if mass >= top_p:
                break
        mass = sum(probs[i] for i in chosen)
        probs = [probs[i] / mass if i in chosen else 0.0 for i in range(len(probs))]
    return probs


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("top_k", [None, 1, 3, 6])
@pytest.mark.parametrize("top_p", [None, 0.3, 0.8, 0.95, 1.0])
def test_probs_match_brute_force(temperature, top_k, top_p):
    got = next_token_probs(LOGITS, temperature, top_k, top_p)
    want = torch.tensor(brute_force(LOGITS.tolist(), temperature, top_k, top_p))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_greedy_is_one_hot_argmax():
    assert next_token_probs(LOGITS, 0.0).tolist() == [0, 0, 0, 1, 0, 0]
    assert next_token_probs(LOGITS[None], 0.0, top_k=2).shape == (1, 6)


def test_sample_frequencies_follow_the_distribution():
    probs = next_token_probs(LOGITS, 1.0, top_k=4)
    draws = sample(probs.expand(20000, -1), make_generator(0))
    freq = torch.bincount(draws, minlength=6).float() / 20000
    assert freq[[1, 4]].sum() == 0  # filtered out by top-k
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)


def test_seeded_sampling_is_reproducible():
    probs = next_token_probs(LOGITS, 1.0)
    a = sample(probs.expand(50, -1), make_generator(7))
    b = sample(probs.expand(50, -1), make_generator(7))
    c = sample(probs.expand(50, -1), make_generator(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": 1.0, "top_k": 0}, "top_k"),
    ({"temperature": 1.0, "top_p": 0.0}, "top_p"),
    ({"temperature": 1.0, "top_p": 1.5}, "top_p"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        next_token_probs(LOGITS, **kwargs)
    with pytest.raises(ValueError, match="seed"):
        make_generator("0")
