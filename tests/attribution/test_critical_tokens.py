"""Critical tokens: known answers on tiny models (one boosted logit, prefix and early-exit variants), the table
and dict forms, and bad input refused before any model work."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from workbench.attribution import Scorer, critical_tokens
from workbench.models import LM
from workbench.models.tiny import tiny_config, tiny_lm, tiny_tokenizer

PROMPT = "The cat sat"
CONT = " on a mat, a cat."
BOOST = 3.0


def boosted(lm: LM, token: int, c: float) -> LM:
    """A copy of `lm` whose logit of `token` is raised by c at every position (an LM-head bias), nothing else."""
    model = copy.deepcopy(lm.model)
    head = model.lm_head
    new = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        new.weight.copy_(head.weight)
        new.bias.zero_()
        new.bias[token] = c
    model.lm_head = new
    return LM(model, lm.tokenizer)


def plain_logprobs(lm: LM, ids: list[int], **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(lm.forward(ids, **kwargs).logits[0].double(), -1)


def test_one_boosted_token_is_ranked_first_with_the_exact_contrast(llama):
    a_id = llama.tokenizer.encode("m")[0]  # once in the continuation (byte tokens)
    negative = boosted(llama, a_id, BOOST)
    ct = critical_tokens(llama, negative, PROMPT, CONT)
    ids = llama.tokenizer.encode(PROMPT + CONT)
    cont = llama.tokenizer.encode(CONT)
    n0 = len(ids) - len(cont)
    logp = plain_logprobs(llama, ids)
    p_a = logp[n0 - 1:len(ids) - 1, a_id].exp().numpy()
    # p_neg(y) = p(y) e^{c [y = a]} / (1 + p(a) (e^c - 1)), so the contrast is known in closed form
    is_a = np.array([t == a_id for t in cont], dtype=float)
    want = -BOOST * is_a + np.log1p(p_a * (math.exp(BOOST) - 1))
    np.testing.assert_allclose(ct.contrast, want, atol=1e-5)
    assert ct.order[0] == cont.index(a_id) == CONT.index("m") and ct.tokens[ct.order[0]] == "m"
    assert ct.contrast[ct.order[0]] < 0 < ct.contrast[ct.order[1]]
    np.testing.assert_allclose(ct.logp_positive, [float(logp[n0 - 1 + j, t]) for j, t in enumerate(cont)], atol=1e-6)
    np.testing.assert_allclose(ct.score, 2 * ct.logp_positive - ct.logp_negative, atol=1e-12)


def test_identical_sides_have_zero_contrast(llama):
    ct = critical_tokens(llama, llama, PROMPT, CONT)
    np.testing.assert_allclose(ct.contrast, 0.0, atol=1e-12)
    assert ct.order.tolist() == list(range(len(CONT)))  # ties keep trajectory order


def test_prefix_and_early_exit_variants(llama):
    cont = llama.tokenizer.encode(CONT)
    prefix = "Be wrong. "
    ct = critical_tokens(llama, Scorer(llama, prefix=prefix, name="prefixed"), PROMPT, CONT)
    ids = llama.tokenizer.encode(prefix) + llama.tokenizer.encode(PROMPT + CONT)
    n0 = len(ids) - len(cont)
    logp = plain_logprobs(llama, ids)
    np.testing.assert_allclose(ct.logp_negative, [float(logp[n0 - 1 + j, t]) for j, t in enumerate(cont)],
                               atol=1e-6)
    assert ct.negative == "prefixed"
    early = critical_tokens(llama, Scorer(llama, exit_layer=1), PROMPT, CONT)
    ids = llama.tokenizer.encode(PROMPT + CONT)
    n0 = len(ids) - len(cont)
    logp = plain_logprobs(llama, ids, exit_layer=1)
    np.testing.assert_allclose(early.logp_negative, [float(logp[n0 - 1 + j, t]) for j, t in enumerate(cont)],
                               atol=1e-6)
    assert "exit_layer=1" in early.negative


def test_rank_by_score_and_token_id_inputs(llama):
    ids, cont = llama.tokenizer.encode(PROMPT), llama.tokenizer.encode(CONT)
    negative = boosted(llama, cont[3], 2.0)
    by_ids = critical_tokens(llama, negative, ids, cont, beta=0.5, rank_by="score")
    by_text = critical_tokens(llama, negative, PROMPT, CONT, beta=0.5, rank_by="score")
    np.testing.assert_allclose(by_ids.logp_negative, by_text.logp_negative, atol=1e-12)
    score = 1.5 * by_ids.logp_positive - 0.5 * by_ids.logp_negative
    assert by_ids.order.tolist() == np.argsort(score, kind="stable").tolist()


def test_table_and_dict(llama):
    negative = boosted(llama, llama.tokenizer.encode("m")[0], BOOST)
    ct = critical_tokens(llama, negative, PROMPT, CONT)
    table = ct.table()
    assert list(table.columns) == ["rank", "position", "token_id", "token", "logp_positive", "logp_negative",
                                   "contrast", "score"]
    assert len(table) == len(CONT) and table["rank"].tolist() == list(range(1, len(CONT) + 1))
    assert table["contrast"].is_monotonic_increasing and table["token"].iloc[0] == "m"
    d = json.loads(json.dumps(ct.to_dict()))
    assert d["rows"][0]["token"] == "m" and len(d["logp_positive"]) == len(CONT)
    assert ct.top(1)[0][1] == "m" and "CriticalTokens(" in repr(ct)


def test_bad_input_is_refused_before_work(llama):
    config = tiny_config("llama")
    config.vocab_size = 300
    from transformers import AutoModelForCausalLM

    other = LM(AutoModelForCausalLM.from_config(config), tiny_tokenizer())
    llama.counters.reset()
    with pytest.raises(ValueError, match=r"positive \(LlamaForCausalLM.*vocab 257\) and negative .*vocab 300"):
        critical_tokens(llama, other, PROMPT, CONT)
    with pytest.raises(ValueError, match="continuation is empty"):
        critical_tokens(llama, llama, PROMPT, "")
    with pytest.raises(ValueError, match="continuation is empty"):
        critical_tokens(llama, llama, PROMPT, [])
    with pytest.raises(ValueError, match="prompt .* is empty"):
        critical_tokens(llama, llama, "", CONT)
    with pytest.raises(ValueError, match="beta must be"):
        critical_tokens(llama, llama, PROMPT, CONT, beta=0)
    with pytest.raises(ValueError, match="rank_by must be one of"):
        critical_tokens(llama, llama, PROMPT, CONT, rank_by="size")
    with pytest.raises(ValueError, match=r"negative.exit_layer must be None or an int in \[0, 2\]"):
        critical_tokens(llama, Scorer(llama, exit_layer=3), PROMPT, CONT)
    with pytest.raises(ValueError, match=r"continuation\[1\] = 999 is outside"):
        critical_tokens(llama, llama, PROMPT, [1, 999])
    with pytest.raises(ValueError, match="positive must be an LM"):
        critical_tokens("gpt", llama, PROMPT, CONT)
    with pytest.raises(ValueError, match="exceed the model's context"):
        critical_tokens(llama, llama, "x" * 250, CONT)
    assert llama.counters.forward_calls == 0


def test_a_different_tiny_family_with_the_same_vocabulary_works(llama):
    qwen = tiny_lm("qwen2", seed=1)
    ct = critical_tokens(llama, qwen, PROMPT, CONT)
    assert np.isfinite(ct.contrast).all() and len(ct.order) == len(CONT)
