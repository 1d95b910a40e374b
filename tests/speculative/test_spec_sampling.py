import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from workbench.speculative import (
    SamplingConfig,
    check_sampling,
    probs_from_logits,
    sample_token,
)


def hf_probs(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """The same settings through transformers' logits warpers (temperature, then top-k, then top-p)."""
    scores = logits[None].clone()
    scores = TemperatureLogitsWarper(temperature)(None, scores)
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return torch.softmax(scores, -1)[0]


@pytest.mark.parametrize("temperature, top_k, top_p", [
    (1.0, None, None), (0.7, None, None), (1.5, 5, None), (1.0, None, 0.9), (0.8, 20, 0.7), (1.2, 3, 0.5),
    (1.0, 1, None), (1.0, None, 0.01), (2.0, 40, 0.95),
])
def test_matches_transformers_warpers(temperature, top_k, top_p):
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        logits = torch.randn(50, generator=gen, dtype=torch.float64) * 3
        ours = probs_from_logits(logits, temperature, top_k, top_p)
        theirs = hf_probs(logits, temperature, top_k, top_p)
        assert ours.dtype == torch.float64
        assert torch.equal(ours > 0, theirs > 0)
        assert torch.allclose(ours, theirs, atol=1e-12)


def test_top_p_keeps_the_token_that_crosses_the_threshold():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64))
    assert torch.allclose(probs_from_logits(logits, 1.0, None, 0.5), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    assert torch.allclose(probs_from_logits(logits, 1.0, None, 0.6), torch.tensor([0.625, 0.375, 0, 0], dtype=torch.float64))
    assert torch.allclose(probs_from_logits(logits, 1.0, None, 0.95),
                          torch.tensor([0.5, 0.3, 0.15, 0], dtype=torch.float64) / 0.95)


def test_temperature_zero_is_one_hot_on_the_first_argmax():
    logits = torch.tensor([[0.1, 2.0, 2.0, -1.0], [3.0, 0.0, 0.0, 0.0]])
    probs = probs_from_logits(logits, 0.0, top_k=2, top_p=0.3)
    assert probs.tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]
    assert SamplingConfig(temperature=0).greedy and not SamplingConfig().greedy


def test_batched_rows_are_processed_independently():
    logits = torch.randn(3, 4, 30, dtype=torch.float64)
    batched = probs_from_logits(logits, 0.9, 7, 0.8)
    for i in range(3):
        for j in range(4):
            assert torch.allclose(batched[i, j], probs_from_logits(logits[i, j], 0.9, 7, 0.8), atol=1e-15)
    assert torch.allclose(batched.sum(-1), torch.ones(3, 4, dtype=torch.float64))


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": -0.5}, "temperature must be a number >= 0"),
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": float("inf")}, "temperature must be finite"),
    ({"temperature": True}, "temperature"),
    ({"temperature": 1.0, "top_k": 0}, "top_k must be None or an int >= 1"),
    ({"temperature": 1.0, "top_k": 2.5}, "top_k"),
    ({"temperature": 1.0, "top_p": 0.0}, r"top_p must be None or a number in \(0, 1\]"),
    ({"temperature": 1.0, "top_p": 1.5}, "top_p"),
])
def test_bad_settings_are_refused_naming_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_sampling(**kwargs)
    with pytest.raises(ValueError, match=match):
        SamplingConfig(**kwargs)
    with pytest.raises(ValueError, match=match):
        probs_from_logits(torch.zeros(4), **kwargs)


def test_bad_logits_are_refused():
    with pytest.raises(ValueError, match="logits"):
        probs_from_logits(torch.zeros(4, dtype=torch.long))


def test_config_round_trip_and_seeded_sampling_is_reproducible():
    config = SamplingConfig(temperature=0.8, top_k=5, top_p=0.9)
    assert config.to_dict() == {"temperature": 0.8, "top_k": 5, "top_p": 0.9}
    probs = config.probs(torch.randn(20, generator=torch.Generator().manual_seed(1)))
    draws = []
    for seed in (7, 7):
        generator = torch.Generator().manual_seed(seed)
        draws.append([sample_token(probs, generator) for _ in range(10)])
    assert draws[0] == draws[1]
    assert all(probs[t] > 0 for t in draws[0])
    with pytest.raises(ValueError, match="one-dimensional"):
        sample_token(probs[None])
