import pytest
import torch

from conftest import every_layer_sparse

from workbench.models.tiny import tiny_lm
from workbench.sparse import Budget, get_selector
from workbench.sparse.integration import SparseAttention, sparse_generate

PROMPT = [(11 * i + 5) % 256 for i in range(30)]
TOKENS = [9, 80, 7, 61, 5, 200, 3]
BUDGET = 8
# 2 layers x 2 KV heads x head_dim 8 x (K, V) x 4 bytes per cached position
ROW_BYTES = 2 * 2 * 8 * 2 * 4


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("llama", seed=4)


def step_logits(lm, name, mode, **params):
    """Prefill PROMPT, then feed TOKENS one by one at their true positions; evict after each step in evict mode."""
    attn = SparseAttention(get_selector(name, budget=BUDGET, **{**every_layer_sparse(name), **params}), mode=mode)
    cache = lm.new_cache()
    out, lengths = [], []
    with lm.attention(attn):
        lm.forward(PROMPT, cache=cache)
        for i, t in enumerate(TOKENS):
            out.append(lm.forward([t], cache=cache, position_ids=[len(PROMPT) + i]).logits[0, -1])
            if mode == "evict":
                attn.evict(cache)
            lengths.append(cache.length)
    return torch.stack(out), lengths, cache, attn


@pytest.mark.parametrize("name,params", [("streaming_llm", {"sinks": 2}), ("h2o", {}), ("snapkv", {"window": 4})])
def test_monotone_policies_evict_to_the_same_logits_and_tokens_as_masked_mode(lm, name, params):
    masked, masked_len, _, masked_attn = step_logits(lm, name, "masked", **params)
    evicted, evicted_len, cache, attn = step_logits(lm, name, "evict", **params)
    torch.testing.assert_close(evicted, masked, atol=2e-5, rtol=1e-5)
    assert masked_len == [len(PROMPT) + 1 + i for i in range(len(TOKENS))]  # masked mode keeps every row
    assert evicted_len == [BUDGET] * len(TOKENS)  # the cache physically holds the budget
    assert cache.nbytes == BUDGET * ROW_BYTES
    assert [s.kv_bytes for s in attn.steps] == [s.kv_bytes for s in masked_attn.steps]
    assert [s.dense_kv_bytes for s in attn.steps] == [s.dense_kv_bytes for s in masked_attn.steps]

    a = sparse_generate(lm, PROMPT, name, budget=BUDGET, max_new_tokens=10, **params)
    b = sparse_generate(lm, PROMPT, name, budget=BUDGET, max_new_tokens=10, mode="evict", **params)
    assert b.generation.new_ids == a.generation.new_ids
    assert b.cache_bytes == [BUDGET * ROW_BYTES] * 9
    assert b.dense_cache_bytes == [(len(PROMPT) + 1 + i) * ROW_BYTES for i in range(9)]
    assert b.to_dict()["params"]["mode"] == "evict"


def test_h2o_scores_follow_the_kept_rows(lm):
    _, _, _, masked = step_logits(lm, "h2o", "masked")
    _, _, _, evicted = step_logits(lm, "h2o", "evict")
    for layer, state in evicted.states.items():
        full_score = masked.states[layer].memory["h2o.score"]
        kept = ~masked.states[layer].memory["h2o.evicted"]
        kept[..., full_score.shape[-1]:] = True
        expected = full_score[kept[..., : full_score.shape[-1]]].view(1, 2, -1)
        torch.testing.assert_close(state.memory["h2o.score"][..., : expected.shape[-1]], expected, atol=1e-5, rtol=1e-5)
        assert state.prefill_queries is None  # released after the first eviction


def test_query_aware_policies_keep_the_budget_but_may_differ(lm):
    _, lengths, cache, _ = step_logits(lm, "quest", "evict", page_size=4)
    assert lengths == [BUDGET] * len(TOKENS) and cache.nbytes == BUDGET * ROW_BYTES
    gen = sparse_generate(lm, PROMPT, "tokenselect", budget=BUDGET, max_new_tokens=6, mode="evict")
    assert gen.cache_bytes == [BUDGET * ROW_BYTES] * 5


def test_a_budget_covering_the_context_evicts_nothing(lm):
    dense = lm.generate(PROMPT, max_new_tokens=6).new_ids
    gen = sparse_generate(lm, PROMPT, "h2o", budget=len(PROMPT) + 6, max_new_tokens=6, mode="evict")
    assert gen.generation.new_ids == dense
    assert gen.cache_bytes == gen.dense_cache_bytes


def test_unsupported_setups_are_refused_before_work(lm):
    calls = lm.counters.forward_calls
    with pytest.raises(ValueError, match="mode 'evict' does not support policy 'spatten'"):
        sparse_generate(lm, PROMPT, "spatten", budget=8, mode="evict")
    with pytest.raises(ValueError, match="per-layer / per-head budgets are for masked mode"):
        sparse_generate(lm, PROMPT, "h2o", budget=Budget(tokens=8, layers={1: 12}), mode="evict")
    with pytest.raises(ValueError, match="sliding-window layers"):
        sparse_generate(tiny_lm("gemma3", seed=0), PROMPT, "h2o", budget=8, mode="evict")
    with pytest.raises(ValueError, match=r"mode must be one of \['masked', 'gathered', 'evict'\]"):
        sparse_generate(lm, PROMPT, "h2o", budget=8, mode="drop")
    assert lm.counters.forward_calls == calls
    with pytest.raises(ValueError, match="evict\\(\\) is for mode 'evict'"):
        SparseAttention(get_selector("h2o", budget=8)).evict(lm.new_cache())
