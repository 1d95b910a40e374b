"""Occlusion and the perturbation value function: independent leave-one-out, batching, KV-cache reuse."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.attribution import (
    Contrastive,
    PerturbationValue,
    TargetFunction,
    attribute,
)
from workbench.attribution.problem import Problem, check_prompt
from workbench.attribution.targets import check_target, resolve
from workbench.attribution.units import build_units
from workbench.models.tiny import tiny_lm

PROMPT = "The cat sat on a mat."  # 21 byte tokens: longer than gemma3's sliding window of 8


def token_logprobs(lm, ids, cont):
    """log p(cont[j] | ids, cont[:j]) from one plain forward of the token ids."""
    logits = lm.forward(ids + cont).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return np.array([float(logp[len(ids) - 1 + j, t]) for j, t in enumerate(cont)])


def test_occlusion_equals_leave_one_out_by_hand(llama):
    ids = llama.tokenizer.encode(PROMPT)
    cont = llama.tokenizer.encode(" Yes")
    pad = llama.tokenizer.eos_id  # the tiny models have no pad token: "pad" means EOS
    full = token_logprobs(llama, ids, cont)
    want = np.stack([full - token_logprobs(llama, ids[:i] + [pad] + ids[i + 1:], cont) for i in range(len(ids))]).T
    a = attribute(llama, PROMPT, " Yes", method="occlusion", progress=False)
    assert a.matrix.shape == (len(cont), len(ids))
    np.testing.assert_allclose(a.matrix, want, atol=2e-5)
    np.testing.assert_allclose(a.target_values, full, atol=2e-5)
    assert a.cost.evaluations == len(ids) + 1


def test_occlusion_by_word_removes_whole_words(llama):
    ids = llama.tokenizer.encode(PROMPT)
    cont = llama.tokenizer.encode(" Yes")
    pad = llama.tokenizer.eos_id
    a = attribute(llama, PROMPT, " Yes", method="occlusion", granularity="word", progress=False)
    assert [u.text for u in a.sources] == ["The", " cat", " sat", " on", " a", " mat."]
    full = token_logprobs(llama, ids, cont)
    for u, unit in enumerate(a.sources):
        removed = [pad if i in unit.token_indices else t for i, t in enumerate(ids)]
        np.testing.assert_allclose(a.matrix[:, u], full - token_logprobs(llama, removed, cont), atol=2e-5)


@pytest.mark.parametrize("method,options", [("occlusion", {}), ("shapley", {"permutations": 6}),
                                            ("kernel_shap", {"samples": 30})])
def test_batched_equals_unbatched(llama, method, options):
    one = attribute(llama, PROMPT, " Yes", method=method, batch_size=1, granularity="word", progress=False, **options)
    many = attribute(llama, PROMPT, " Yes", method=method, batch_size=64, granularity="word", progress=False,
                     **options)
    np.testing.assert_allclose(one.matrix, many.matrix, atol=2e-5)
    assert one.cost.evaluations == many.cost.evaluations
    assert one.cost.forward_passes > many.cost.forward_passes


TARGETS = {
    "continuation": " Yes",
    "contrastive": Contrastive(" Yes", " No!"),
    "next-token function": TargetFunction(lambda logits, ids: torch.logsumexp(logits[:, 0, :5], -1), "", ("lse",)),
}


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
@pytest.mark.parametrize("kind", list(TARGETS))
def test_kv_reuse_equals_full_recompute(arch, kind):
    lm = tiny_lm(arch, seed=1)
    target = TARGETS[kind]
    reused = attribute(lm, PROMPT, target, method="occlusion", batch_size=5, progress=False)
    full = attribute(lm, PROMPT, target, method="occlusion", batch_size=5, reuse_prefix=False, progress=False)
    np.testing.assert_allclose(reused.matrix, full.matrix, atol=3e-5)
    np.testing.assert_allclose(reused.target_values, full.target_values, atol=3e-5)
    assert reused.cost.tokens_processed < full.cost.tokens_processed
    assert full.extras["kv_reused_tokens"] == 0 < reused.extras["kv_reused_tokens"]


def _problem(lm, prompt, target, granularity="token"):
    text = check_prompt(lm, prompt)
    units = build_units(granularity, text.ids, text.offsets, text.data)
    return Problem(lm, text, units, resolve(lm, check_target(lm, target), text.prefix_ids + text.ids))


def test_value_function_random_coalitions_reuse_and_memo(llama):
    problem = _problem(llama, PROMPT, Contrastive(" Yes", " No!"))
    rng = np.random.default_rng(0)
    masks = rng.random((40, problem.n_units)) < 0.7
    masks[0] = True
    reused = PerturbationValue(problem, "zero", batch_size=7, reuse_prefix=True)
    full = PerturbationValue(problem, "zero", batch_size=7, reuse_prefix=False)
    np.testing.assert_allclose(reused(masks), full(masks), atol=3e-5)
    before = (reused.evaluations, llama.counters.forward_calls)
    again = reused(masks[::-1])
    assert (reused.evaluations, llama.counters.forward_calls) == before  # all answered from the memo
    np.testing.assert_allclose(again, full(masks)[::-1], atol=3e-5)


def test_value_function_rejects_wrong_mask_shape(llama):
    value = PerturbationValue(_problem(llama, "abc", "d"))
    with pytest.raises(ValueError, match=r"masks must have shape \[M, 3\]"):
        value(np.ones((2, 4), dtype=bool))


def test_kv_reuse_accounting_by_hand(llama):
    # 21 prompt tokens, 4 target tokens, leave-one-out: 22 inputs sorted by first removed position
    # [none, 20, 19, ..., 0], batches of 5 start at 17, 12, 7, 2, 0 (the unperturbed input starts at 20 but
    # shares the first batch). Fed tokens: the unperturbed prompt once (21), then per batch rows x (21 - start + 4)
    a = attribute(llama, PROMPT, " Yes", method="occlusion", batch_size=5, progress=False)
    assert a.cost.tokens_processed == 21 + 5 * 8 + 5 * 13 + 5 * 18 + 5 * 23 + 2 * 25 == 381
    assert a.cost.forward_passes == 1 + 5
    assert a.extras["kv_reused_tokens"] == 5 * 17 + 5 * 12 + 5 * 7 + 5 * 2 == 190
    b = attribute(llama, PROMPT, " Yes", method="occlusion", batch_size=5, reuse_prefix=False, progress=False)
    assert b.cost.tokens_processed == 22 * 25 and b.cost.forward_passes == 5
