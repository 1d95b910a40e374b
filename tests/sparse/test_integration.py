import pytest
import torch

from workbench.models.attention import reference_attention
from workbench.models.tiny import tiny_lm
from workbench.sparse import SELECTORS, Budget, get_selector
from workbench.sparse.integration import SparseAttention, sparse_generate

PROMPT = [(7 * i + 3) % 256 for i in range(30)]
NEW = 6


@pytest.fixture(scope="module")
def lms():
    return {arch: tiny_lm(arch, seed=1) for arch in ("llama", "qwen2", "gemma3")}


def decode_logits(lm, tokens, fn=None):
    """Prefill PROMPT, then feed `tokens` one by one; logits of every step [1 + len(tokens), V]."""
    def run():
        cache = lm.new_cache()
        out = [lm.forward(PROMPT, cache=cache).logits[0, -1]]
        for t in tokens:
            out.append(lm.forward([t], cache=cache).logits[0, -1])
        return torch.stack(out)

    if fn is None:
        return run()
    with lm.attention(fn):
        return run()


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_full_policy_logits_equal_no_override(lms, arch):
    lm = lms[arch]
    tokens = [5, 200, 17, 99, 3]
    expected = decode_logits(lm, tokens)
    got = decode_logits(lm, tokens, SparseAttention(get_selector("full")))
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_budget_covering_the_context_gives_the_dense_greedy_output(lms, arch, name):
    lm = lms[arch]
    expected = lm.generate(PROMPT, max_new_tokens=NEW).new_ids
    budget = None if name == "full" else len(PROMPT) + NEW
    gen = sparse_generate(lm, PROMPT, name, budget=budget, max_new_tokens=NEW)
    assert gen.generation.new_ids == expected
    assert all(step.kv_bytes == step.dense_kv_bytes for step in gen.steps)  # every row read


def test_masked_mode_attends_exactly_the_selection(lms):
    """StreamingLLM (2 sinks, budget 8) equals a hand-written override that masks decode steps by position."""
    lm = lms["llama"]

    def by_hand(query, key, value, *, layer_idx, scaling, attention_mask, module):
        s = key.shape[2]
        if query.shape[2] == 1:
            keep = torch.zeros(s, dtype=torch.bool)
            keep[:2] = True
            keep[s - 6:] = True
            attention_mask = torch.where(keep, 0.0, torch.finfo(query.dtype).min).view(1, 1, 1, s)
        return reference_attention(query, key, value, scaling=scaling, attention_mask=attention_mask, module=module)

    tokens = [11, 22, 33, 44]
    expected = decode_logits(lm, tokens, by_hand)
    got = decode_logits(lm, tokens, SparseAttention(get_selector("streaming_llm", budget=8, sinks=2)))
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)
    dense = decode_logits(lm, tokens)
    assert (got - dense).abs().max() > 1e-3  # the restriction matters on this model


def test_kv_bytes_per_step_are_counted(lms):
    lm = lms["llama"]  # 2 layers, 2 KV heads, head_dim 8, fp32
    gen = sparse_generate(lm, PROMPT, "streaming_llm", budget=8, max_new_tokens=NEW)
    assert len(gen.steps) == NEW - 1  # the first new token comes from the prefill
    for i, step in enumerate(gen.steps):
        assert step.context_len == len(PROMPT) + 1 + i
        assert step.kv_bytes == 2 * 2 * 8 * 8 * 2 * 4
        assert step.index_bytes == 2 * 2 * 8 * 4 and step.metadata_bytes == 0
        assert step.dense_kv_bytes == 2 * 2 * step.context_len * 8 * 2 * 4
    quest = sparse_generate(lm, PROMPT, "quest", budget=8, page_size=4, dense_layers=0, max_new_tokens=NEW)
    pages = [-(-s.context_len // 4) for s in quest.steps]
    assert [s.metadata_bytes for s in quest.steps] == [2 * 2 * p * 2 * 8 * 4 for p in pages]
    d = gen.to_dict()
    assert d["steps"][0]["total_bytes"] == gen.kv_bytes_per_step[0] and d["policy"] == "streaming_llm"


def test_sliding_window_layers_read_their_window(lms):
    lm = lms["gemma3"]  # layer 0: sliding window 8, layer 1: full
    gen = sparse_generate(lm, PROMPT, "streaming_llm", budget=4, max_new_tokens=3)
    for step in gen.steps:
        assert step.rows == 2 * 8 + 2 * 4
        assert step.dense_kv_bytes == (2 * 8 + 2 * step.context_len) * 8 * 2 * 4


def test_policies_get_their_inputs_in_the_model(lms):
    lm = lms["llama"]
    for name in ("h2o", "snapkv"):
        attn = SparseAttention(get_selector(name, budget=10))
        with lm.attention(attn):
            lm.generate(PROMPT, max_new_tokens=4)
        for state in attn.states.values():
            assert state.prefill_queries.shape == (1, 4, len(PROMPT), 8)
            assert state.context_len == len(PROMPT) + 3
            if name == "h2o":
                score = state.memory["h2o.score"]
                assert score.shape == (1, 2, len(PROMPT) + 3)
                # every prompt query row sums to 1 per query head: 2 query heads per KV head
                assert score[..., : len(PROMPT)].sum().item() >= 2 * 2 * len(PROMPT) - 1e-3


def test_a_second_generation_starts_fresh(lms):
    lm = lms["llama"]
    attn = SparseAttention(get_selector("h2o", budget=10))
    with lm.attention(attn):
        a = lm.generate(PROMPT, max_new_tokens=4).new_ids
        b = lm.generate(PROMPT, max_new_tokens=4).new_ids
    assert a == b and len(attn.steps) == 3


def test_bad_input_is_refused_before_work(lms):
    lm = lms["llama"]
    calls = lm.counters.forward_calls
    with pytest.raises(ValueError, match=r"budget: 37 tokens is larger than the context \(36 tokens\)"):
        sparse_generate(lm, PROMPT, "h2o", budget=37, max_new_tokens=NEW)
    with pytest.raises(ValueError, match="unknown sparse attention policy 'nope'; known: .*quest"):
        sparse_generate(lm, PROMPT, "nope", budget=8)
    with pytest.raises(ValueError, match="budget.heads has 3 entries but the layer has 2 KV heads"):
        sparse_generate(lm, PROMPT, "oracle", budget=Budget(heads=(4, 4, 4)))
    with pytest.raises(ValueError, match="budget: tokens must be > 0"):
        sparse_generate(lm, PROMPT, "quest", budget=0)
    assert lm.counters.forward_calls == calls


@pytest.mark.parametrize("name", ["streaming_llm", "h2o", "quest", "tokenselect"])
def test_gathered_mode_equals_masked_mode(lms, name):
    lm = lms["llama"]
    tokens = [9, 8, 7, 6]
    masked = decode_logits(lm, tokens, SparseAttention(get_selector(name, budget=8), mode="masked"))
    gathered = decode_logits(lm, tokens, SparseAttention(get_selector(name, budget=8), mode="gathered"))
    torch.testing.assert_close(gathered, masked, atol=2e-5, rtol=1e-5)
    a = sparse_generate(lm, PROMPT, name, budget=8, max_new_tokens=NEW, mode="gathered")
    b = sparse_generate(lm, PROMPT, name, budget=8, max_new_tokens=NEW)
    assert a.generation.new_ids == b.generation.new_ids and a.kv_bytes_per_step == b.kv_bytes_per_step


def test_bad_mode(lms):
    with pytest.raises(ValueError, match=r"mode must be one of \['masked', 'gathered', 'evict'\]"):
        sparse_generate(lms["llama"], PROMPT, "h2o", budget=8, mode="evicted")
    with pytest.raises(ValueError, match="selector must be a Selector"):
        SparseAttention("h2o")
