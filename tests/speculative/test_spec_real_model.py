"""Speculative decoding on the real default model (SmolLM2-135M-Instruct, fp32): greedy output token-identical to
LM.generate, including an EOS inside an accepted prompt-lookup draft."""
from __future__ import annotations

import pytest

from workbench.speculative import speculative_generate
from workbench.speculative.drafters import PromptLookupDrafter

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_lm():
    from workbench.models import LM

    return LM.load("smollm2-135m")


def test_eos_inside_a_prompt_lookup_draft_on_the_default_model(real_lm):
    """A repeated question: prompt lookup drafts the earlier answer including its <|im_end|> and what followed;
    the target accepts the answer and the EOS, and generation ends exactly where LM.generate ends."""
    question = {"role": "user", "content": "What is the capital of France?"}
    messages = [question, {"role": "assistant", "content": "The capital of France is Paris."}, question]
    prompt = real_lm.tokenizer.apply_chat_template(messages)
    ref = real_lm.generate(prompt, max_new_tokens=24)
    assert ref.stop_reason == "eos"
    spec = speculative_generate(real_lm, prompt, "prompt_lookup", max_new_tokens=24, budget=12)
    assert spec.new_ids == ref.new_ids and spec.text == ref.text and spec.stop_reason == "eos"
    eos_step = spec.steps[-1]
    eos_at = eos_step.tokens.index(ref.new_ids[-1])
    assert eos_at < eos_step.accepted - 1  # the EOS and draft tokens after it were accepted; those were cut
    assert spec.forward_calls < ref.forward_calls


def test_prompt_lookup_trie_greedy_equals_autoregressive_on_the_default_model(real_lm):
    prompt = ("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\n"
              "def mul(a, b):\n    return a * b\n\n\ndef")
    ref = real_lm.generate(prompt, max_new_tokens=32)
    drafter = PromptLookupDrafter(max_ngram=2, branches=3)
    spec = speculative_generate(real_lm, prompt, drafter, max_new_tokens=32, budget=10)
    assert spec.new_ids == ref.new_ids and spec.stop_reason == ref.stop_reason
    assert spec.tau > 1.5
