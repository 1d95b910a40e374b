"""generate: greedy equals argmax of repeated full forwards; sampling is seeded; EOS and stop strings stop."""
from __future__ import annotations

import json

import pytest
import torch

from workbench.models.sampling import make_generator, next_token_probs, sample
from workbench.models.tiny import EOS_ID


def argmax_decode(lm, prompt_ids, n):
    """Reference: no cache, one full forward of the whole sequence per new token, argmax."""
    ids = list(prompt_ids)
    for _ in range(n):
        with torch.no_grad():
            ids.append(int(lm.model(torch.tensor([ids]), use_cache=False).logits[0, -1].argmax()))
    return ids[len(prompt_ids):]


def test_greedy_equals_argmax_of_full_forwards(lm):
    prompt = "The cat"
    lm.counters.reset()
    g = lm.generate(prompt, max_new_tokens=12)
    assert g.prompt_ids == list(prompt.encode())
    assert g.new_ids == argmax_decode(lm, g.prompt_ids, 12)
    assert g.stop_reason == "length" and len(g.new_ids) == 12
    assert g.forward_calls == 12 == lm.counters.forward_calls  # prefill + 11 decode steps
    assert lm.counters.tokens_processed == len(g.prompt_ids) + 11
    assert g.text == lm.tokenizer.decode(g.new_ids)
    assert g.seconds > 0 and g.tokens_per_second == pytest.approx(12 / g.seconds)
    json.dumps(g.to_dict())
    assert "12 new tokens" in repr(g) and "<pre" in g._repr_html_()


def test_token_id_prompts_and_top_k_1_is_greedy(llama):
    greedy = llama.generate([72, 105], max_new_tokens=6)
    assert greedy.new_ids == llama.generate("Hi", max_new_tokens=6).new_ids
    sampled = llama.generate(torch.tensor([72, 105]), max_new_tokens=6, temperature=1.3, top_k=1, seed=3)
    assert sampled.new_ids == greedy.new_ids


def test_seeded_sampling_is_reproducible(llama):
    a = llama.generate("abc", max_new_tokens=16, temperature=1.0, seed=11)
    b = llama.generate("abc", max_new_tokens=16, temperature=1.0, seed=11)
    c = llama.generate("abc", max_new_tokens=16, temperature=1.0, seed=12)
    assert a.new_ids == b.new_ids and a.new_ids != c.new_ids
    d = llama.generate("abc", max_new_tokens=16, temperature=0.8, top_p=0.9, seed=11)
    assert d.new_ids == llama.generate("abc", max_new_tokens=16, temperature=0.8, top_p=0.9, seed=11).new_ids


def test_sampled_tokens_come_from_the_model_distribution(llama):
    """Each seeded draw equals a draw from the filtered model distribution with a generator of the same seed
    (the distribution itself is checked against brute force in test_sampling)."""
    prompt = [1, 2, 3]
    with torch.no_grad():
        logits = llama.model(torch.tensor([prompt])).logits[0, -1]
    probs = next_token_probs(logits, 0.7, top_k=50, top_p=0.9)
    firsts = [llama.generate(prompt, max_new_tokens=1, temperature=0.7, top_k=50, top_p=0.9, seed=s).new_ids[0]
              for s in range(20)]
    assert firsts == [int(sample(probs, make_generator(s))) for s in range(20)]
    assert len(set(firsts)) > 3


def test_eos_stops_generation(llama):
    """Make <eos> the argmax at some step by giving it twice the head row of a token greedy decoding emits."""
    prompt = list(b"Once")
    plain = argmax_decode(llama, prompt, 10)
    with torch.no_grad():
        llama.model.lm_head.weight[EOS_ID] = 2 * llama.model.lm_head.weight[plain[3]]
    reference = argmax_decode(llama, prompt, 10)
    assert EOS_ID in reference  # the edit worked (precondition of the test)
    stop_at = reference.index(EOS_ID)
    g = llama.generate(prompt, max_new_tokens=10)
    assert g.stop_reason == "eos"
    assert g.new_ids == reference[: stop_at + 1]
    assert g.text == llama.tokenizer.decode(reference[:stop_at])


def test_stop_strings(llama):
    full = llama.generate("Hello", max_new_tokens=20)
    stop = full.text[5:7]
    # reference: the first prefix of the greedy tokens whose text contains the stop string
    for k in range(1, 21):
        text = llama.tokenizer.decode(full.new_ids[:k])
        if stop in text:
            break
    g = llama.generate("Hello", max_new_tokens=20, stop=["\x00never", stop])
    assert g.stop_reason == "stop"
    assert g.new_ids == full.new_ids[:k]
    assert g.text == text[: text.index(stop)]


def test_progress_bar(llama, capsys):
    g = llama.generate("x", max_new_tokens=3, progress=True)
    assert len(g.new_ids) == 3
    assert "3/3" in capsys.readouterr().err


def test_context_limit(llama):
    g = llama.generate([65] * 250, max_new_tokens=20)
    # 6 generated tokens are fed back (positions 250..255 fill the context of 256); the 7th is never fed
    assert g.stop_reason == "context" and len(g.new_ids) == 7


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": [65] * 256}, r"prompt too long: 256 tokens.*context is 256"),
    ({"prompt": "a" * 300}, r"prompt too long: 300 tokens.*256"),
    ({"prompt": []}, "prompt is empty"),
    ({"prompt": 3.5}, "prompt must be"),
    ({"prompt": "a", "max_new_tokens": 0}, "max_new_tokens"),
    ({"prompt": "a", "temperature": -0.1}, "temperature"),
    ({"prompt": "a", "top_p": 2.0}, "top_p"),
    ({"prompt": "a", "stop": [""]}, "stop"),
    ({"prompt": "a", "temperature": 1.0, "seed": 1.5}, "seed"),
])
def test_bad_inputs(llama, kwargs, message):
    llama.counters.reset()
    with pytest.raises(ValueError, match=message):
        llama.generate(**kwargs)
    assert llama.counters.forward_calls == 0  # raised before any work


def test_forward_rejects_bad_inputs_before_work(llama):
    llama.counters.reset()
    with pytest.raises(ValueError, match=r"input too long: positions up to 299 \(300 tokens\).*context of 256"):
        llama.forward([1] * 300)
    cache = llama.new_cache()
    llama.forward([1] * 250, cache=cache)
    with pytest.raises(ValueError, match="context of 256"):
        llama.forward([1] * 7, cache=cache)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 257\)"):
        llama.forward([1, 257])
    with pytest.raises(ValueError, match="integer"):
        llama.forward(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="position_ids must have shape"):
        llama.forward([1, 2], position_ids=[0, 1, 2])
    with pytest.raises(ValueError, match="KVCache"):
        llama.forward([1], cache=object())
    assert llama.counters.forward_calls == 1 and cache.length == 250
