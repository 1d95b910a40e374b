"""Targets: teacher-forced continuation, greedy generation, contrastive, functions of the output distribution."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.attribution import (
    Contrastive,
    TargetFunction,
    attribute,
    kl_from_prompt,
    sequence_log_likelihood,
)
from workbench.models import LM
from workbench.models.tiny import tiny_model
from workbench.tokenization import ByteTokenizer

PROMPT = "One two three"


def logprobs(lm, ids, cont):
    logp = torch.log_softmax(lm.forward(ids + cont).logits[0].double(), -1)
    return np.array([float(logp[len(ids) - 1 + j, t]) for j, t in enumerate(cont)])


def test_continuation_rows_and_values(llama):
    a = attribute(llama, PROMPT, " fé", method="occlusion", progress=False)
    assert a.target_kind == "continuation" and a.target_text == " fé"
    assert [t.token_ids[0] for t in a.targets] == list(" fé".encode())
    assert [(t.start, t.end) for t in a.targets] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    ids = llama.tokenizer.encode(PROMPT)
    np.testing.assert_allclose(a.target_values, logprobs(llama, ids, list(" fé".encode())), atol=2e-5)


def test_token_id_target_equals_text_target(llama):
    a = attribute(llama, PROMPT, " four", method="occlusion", progress=False)
    b = attribute(llama, PROMPT, list(b" four"), method="occlusion", progress=False)
    np.testing.assert_allclose(a.matrix, b.matrix, atol=1e-6)
    assert [t.text for t in b.targets] == list(" four")


def test_greedy_generation_target(llama):
    gen = llama.generate(PROMPT, max_new_tokens=4)
    before = llama.counters.snapshot()
    a = attribute(llama, PROMPT, None, method="saliency", max_new_tokens=4, progress=False)
    want = gen.new_ids[:-1] if gen.stop_reason == "eos" else gen.new_ids
    assert [t.token_ids[0] for t in a.targets] == want and a.target_kind == "generation"
    assert a.extras["generation"]["max_new_tokens"] == 4
    # the generation's forwards (prefill + one per further token) and the method's one forward are counted
    assert a.cost.forward_passes == (llama.counters.snapshot() - before).forward_calls == len(gen.new_ids) + 1
    ids = llama.tokenizer.encode(PROMPT)
    np.testing.assert_allclose(a.target_values, logprobs(llama, ids, want), atol=2e-5)


def test_contrastive_is_the_difference_of_sequence_scores(llama):
    a = attribute(llama, PROMPT, " yes", method="occlusion", progress=False)
    b = attribute(llama, PROMPT, " no", method="occlusion", progress=False)
    c = attribute(llama, PROMPT, Contrastive(" yes", " no"), method="occlusion", progress=False)
    assert c.matrix.shape == (1, len(PROMPT)) and c.targets[0].kind == "value"
    np.testing.assert_allclose(c.matrix[0], a.matrix.sum(0) - b.matrix.sum(0), atol=1e-5)
    np.testing.assert_allclose(c.target_values[0], a.target_values.sum() - b.target_values.sum(), atol=1e-5)


@pytest.mark.parametrize("method,options", [("occlusion", {}), ("input_x_gradient", {}),
                                            ("integrated_gradients", {"steps": 4}),
                                            ("shapley", {"permutations": 4})])
def test_sequence_log_likelihood_is_the_sum_of_token_rows(llama, method, options):
    # every one of these methods is linear in the explained score
    rows = attribute(llama, PROMPT, " four", method=method, progress=False, **options)
    total = attribute(llama, PROMPT, sequence_log_likelihood(" four"), method=method, progress=False, **options)
    np.testing.assert_allclose(total.matrix[0], rows.matrix.sum(0), atol=1e-5)
    assert total.targets[0].text == "log p(continuation)"


def test_function_with_several_rows(llama):
    def two(logits, ids):
        logp = torch.log_softmax(logits.float(), -1)
        return torch.stack([logp[:, 0, ids[0]], -(logp.exp() * logp).sum(-1)[:, 0]], 1)

    a = attribute(llama, PROMPT, TargetFunction(two, " f", ("first", "entropy")), method="occlusion", progress=False)
    assert [t.text for t in a.targets] == ["first", "entropy"] and a.matrix.shape == (2, len(PROMPT))
    first = attribute(llama, PROMPT, " f", method="occlusion", progress=False)
    np.testing.assert_allclose(a.matrix[0], first.matrix[0], atol=1e-5)


def test_function_returning_a_wrong_shape(llama):
    bad = TargetFunction(lambda logits, ids: logits[:, 0, :3], "", ("a", "b"))
    with pytest.raises(ValueError, match=r"returned shape \[1, 3\]; expected \[1\] or \[1, 2\]"):
        attribute(llama, PROMPT, bad, method="saliency", progress=False)


def test_bos_prefix_is_context_not_a_source():
    tok = ByteTokenizer(("<bos>",), bos="<bos>", eos=None)
    lm = LM(tiny_model("llama", seed=0), tok)
    # no pad and no EOS token: the default "pad" baseline is refused before any work
    with pytest.raises(ValueError, match="baseline='pad' needs a pad token"):
        attribute(lm, "abc", "d", method="occlusion", progress=False)
    assert lm.counters.forward_calls == 0
    pad = 0
    b = attribute(lm, "abc", "d", method="occlusion", baseline=pad, progress=False)
    full = logprobs(lm, [256, 97, 98, 99], [100])
    want = [full - logprobs(lm, [256] + [pad if k == i else t for k, t in enumerate([97, 98, 99])], [100])
            for i in range(3)]
    np.testing.assert_allclose(b.matrix, np.array(want).T, atol=2e-5)
    assert b.prefix_ids == [256] and [s.text for s in b.sources] == ["a", "b", "c"]


def kl_by_hand(lm, prompt_ids, reference_ids, cont, reverse=False):
    """sum_j KL between the distributions at the positions predicting cont[j] and the one after it."""
    p = torch.log_softmax(lm.forward(prompt_ids + cont).logits[0, len(prompt_ids) - 1:].double(), -1)
    q = torch.log_softmax(lm.forward(reference_ids + cont).logits[0, len(reference_ids) - 1:].double(), -1)
    first, second = (p, q) if reverse else (q, p)
    return float((first.exp() * (first - second)).sum())


@pytest.mark.parametrize("cont, reverse", [("", False), ("", True), (" fo", False)])
def test_kl_from_prompt_values(llama, cont, reverse):
    reference = "One two four"
    target = kl_from_prompt(llama, reference, cont, reverse=reverse)
    a = attribute(llama, PROMPT, target, method="occlusion", progress=False)
    assert a.targets[0].text == ("KL(prompt || reference)" if reverse else "KL(reference || prompt)")
    ids, ref = llama.tokenizer.encode(PROMPT), llama.tokenizer.encode(reference)
    want = kl_by_hand(llama, ids, ref, list(cont.encode()), reverse)
    assert want > 1e-4
    assert a.target_values[0] == pytest.approx(want, rel=1e-4, abs=1e-7)
    # against itself the divergence is 0, and removing any word can only raise it
    same = attribute(llama, PROMPT, kl_from_prompt(llama, PROMPT, cont, reverse), method="occlusion",
                     granularity="word", progress=False)
    assert abs(same.target_values[0]) < 1e-5
    assert np.all(same.matrix <= 1e-6) and same.matrix.min() < -1e-4


def test_kl_from_prompt_bad_input(llama):
    with pytest.raises(ValueError, match="reference is empty"):
        kl_from_prompt(llama, "")
    with pytest.raises(ValueError, match="reverse must be a bool"):
        kl_from_prompt(llama, "One", reverse="yes")
    with pytest.raises(ValueError, match=r"continuation\[0\] = 1000000 is outside the model's vocabulary"):
        kl_from_prompt(llama, "One", [10 ** 6])
