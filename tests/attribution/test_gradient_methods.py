"""Gradient methods on a tiny llama: against finite differences (float64) and IG completeness."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.attribution import Contrastive, attribute
from workbench.models.tiny import tiny_lm

PROMPT, TARGET = "Hello", " you"


@pytest.fixture(scope="module")
def llama64():
    lm = tiny_lm("llama", seed=3)
    lm.model.double()
    return lm


def logprobs_of(lm, prompt_embeds, cont):
    """log p(cont) rows [B, n] for a batch of prompt embeddings [B, T, hidden], by a plain forward."""
    batch = prompt_embeds.shape[0]
    embeds = torch.cat([prompt_embeds, lm.embed(cont).detach().expand(batch, -1, -1)], 1)
    logp = torch.log_softmax(lm.forward(inputs_embeds=embeds).logits, -1)
    t = prompt_embeds.shape[1]
    return torch.stack([logp[:, t - 1 + j, c] for j, c in enumerate(cont)], 1)


def test_gradients_match_finite_differences(llama64):
    # fourth-order central differences, d f = (-f(+2h) + 8 f(+h) - 8 f(-h) + f(-2h)) / 12h, over every
    # (token, hidden) coordinate; h is large because the RMSNorms compute in float32 even in a float64 model
    lm = llama64
    ids, cont = lm.tokenizer.encode(PROMPT), lm.tokenizer.encode(TARGET)
    e = lm.embed(ids).detach()  # [1, n, hidden]
    n, hidden, h = len(ids), e.shape[-1], 1e-2
    bumps = torch.eye(n * hidden, dtype=e.dtype).view(n * hidden, n, hidden) * h
    f = {k: logprobs_of(lm, e + k * bumps, cont) for k in (-2, -1, 1, 2)}
    grad = ((-f[2] + 8 * f[1] - 8 * f[-1] + f[-2]) / (12 * h)).T.reshape(len(cont), n, hidden).numpy()

    saliency = attribute(lm, PROMPT, TARGET, method="saliency", progress=False)
    np.testing.assert_allclose(saliency.matrix, np.linalg.norm(grad, axis=-1), rtol=1e-4)
    ixg = attribute(lm, PROMPT, TARGET, method="input_x_gradient", progress=False)
    np.testing.assert_allclose(ixg.matrix, (grad * e[0].numpy()).sum(-1), rtol=1e-4, atol=1e-4)
    assert saliency.cost.backward_passes == len(cont) and saliency.cost.forward_passes == 1


IG_TOLERANCE = 2e-3  # relative completeness gap on the tiny llama (fp32), 32 Gauss-Legendre / 64 trapezoid points


def ig_with_reference(lm, baseline, **options):
    """IG and, by plain forwards, f(x) and f(baseline) for every target row."""
    a = attribute(lm, PROMPT, TARGET, method="integrated_gradients", baseline=baseline, batch_size=64,
                  progress=False, **options)
    ids, cont = lm.tokenizer.encode(PROMPT), lm.tokenizer.encode(TARGET)
    x = lm.embed(ids).detach()
    fill = torch.zeros_like(x) if baseline == "zero" else lm.embed([lm.tokenizer.eos_id] * len(ids)).detach()
    fx, fb = logprobs_of(lm, x, cont)[0].double().numpy(), logprobs_of(lm, fill, cont)[0].double().numpy()
    np.testing.assert_allclose(a.target_values, fx, atol=1e-5)
    np.testing.assert_allclose(a.extras["baseline_values"], fb, atol=1e-5)
    np.testing.assert_allclose(a.extras["completeness_gap"], a.matrix.sum(1) - (fx - fb), atol=1e-4)
    return a, fx - fb


@pytest.mark.parametrize("rule,steps", [("gauss_legendre", 32), ("trapezoid", 64)])
def test_integrated_gradients_completeness(llama, rule, steps):
    a, delta = ig_with_reference(llama, "pad", steps=steps, rule=rule)
    assert np.all(np.abs(a.matrix.sum(1) - delta) <= IG_TOLERANCE * np.abs(delta))
    assert a.extras["max_relative_gap"] <= IG_TOLERANCE


def test_zero_baseline_gap_is_reported(llama):
    # RMSNorm is singular at the zero embedding (see integrated_gradients.py): the gap is large, and reported
    a, _ = ig_with_reference(llama, "zero", steps=32)
    assert a.extras["max_relative_gap"] > 0.1


def test_integrated_gradients_gap_shrinks_with_steps(llama):
    gaps = [attribute(llama, PROMPT, TARGET, method="integrated_gradients", steps=s, rule="trapezoid",
                      batch_size=64, progress=False).extras["max_abs_gap"] for s in (2, 8, 32)]
    assert gaps[2] < gaps[1] < gaps[0]


def test_integrated_gradients_batches_and_costs(llama):
    one = attribute(llama, PROMPT, Contrastive(" you", " me"), method="integrated_gradients", steps=6,
                    batch_size=3, progress=False)
    all_ = attribute(llama, PROMPT, Contrastive(" you", " me"), method="integrated_gradients", steps=6,
                     batch_size=100, progress=False)
    np.testing.assert_allclose(one.matrix, all_.matrix, rtol=1e-5, atol=1e-6)
    # 8 points (6 Gauss-Legendre nodes + both ends); two continuations -> two forwards per batch
    assert one.cost.evaluations == 8 and one.cost.forward_passes == 2 * 3 and one.cost.backward_passes == 3
    assert all_.cost.forward_passes == 2 and all_.cost.backward_passes == 1
