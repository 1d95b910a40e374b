import math

import pytest
import torch

from workbench.models.tiny import tiny_lm
from workbench.sparse import SELECTORS, get_selector
from workbench.sparse.integration import SparseAttention
from workbench.sparse.metrics import mass_recall, oracle_mass_recall
from workbench.sparse.perplexity import policy_perplexity
from workbench.sparse.prefill import decode, dense_prefill, start_policies

PREFIX, SCORE = 40, 12


@pytest.fixture(scope="module")
def lms():
    return {arch: tiny_lm(arch, seed=2) for arch in ("llama", "qwen2", "gemma3")}


def texts(batch=2, length=PREFIX + SCORE + 1, seed=0):
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


def dense_nll(lm, ids):
    """Teacher-forced NLL of tokens PREFIX+1 .. PREFIX+SCORE straight from one plain forward's logits."""
    logits = lm.forward(ids).logits[:, PREFIX:PREFIX + SCORE].double()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, PREFIX + 1:PREFIX + SCORE + 1, None])
    return float(-logp.mean())


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_full_policy_equals_the_dense_teacher_forced_perplexity(lms, arch):
    lm, ids = lms[arch], texts()
    res = policy_perplexity(lm, ids, PREFIX, SCORE, runs=[])
    (row,) = res.rows
    assert row.policy == "full" and row.tokens == 2 * SCORE
    assert row.nll == pytest.approx(dense_nll(lm, ids), abs=1e-4)
    assert row.ppl == pytest.approx(math.exp(dense_nll(lm, ids)), rel=1e-4)
    assert row.delta == 0 and row.recall == pytest.approx(1.0) and row.bytes_ratio == 1.0


def test_a_budget_covering_the_context_equals_dense_for_every_policy(lms):
    lm, ids = lms["llama"], texts()
    names = sorted(n for n in SELECTORS if n != "full")
    res = policy_perplexity(lm, ids, PREFIX, SCORE, runs=[(n, PREFIX + SCORE) for n in names], group=5)
    assert [r.policy for r in res.rows] == ["full", *names]
    for row in res.rows:
        assert row.nll == pytest.approx(res.rows[0].nll, abs=1e-5), row.policy
        assert row.recall == pytest.approx(1.0) and row.oracle_recall == pytest.approx(1.0)


def test_small_budgets_change_the_perplexity_and_read_fewer_bytes(lms):
    lm, ids = lms["llama"], texts()
    res = policy_perplexity(lm, ids, PREFIX, SCORE, runs=[("streaming_llm", 8), ("oracle", 8)])
    _, stream, oracle = res.rows
    assert abs(stream.delta) > 1e-3  # the restriction matters on this model
    assert stream.recall < oracle.recall <= 1.0 and oracle.normalized_recall == pytest.approx(1.0)
    # 2 layers x 2 KV heads x 8 rows x head_dim 8 x (K, V) x 4 bytes + 4-byte indices, per text
    assert stream.kv_bytes_per_step == 2 * (2 * 2 * 8 * 8 * 2 * 4 + 2 * 2 * 8 * 4)
    mean_ctx = PREFIX + 1 + (SCORE - 1) / 2
    assert stream.dense_kv_bytes_per_step == pytest.approx(2 * 2 * 2 * mean_ctx * 8 * 2 * 4)


def test_runs_decoded_together_equal_runs_decoded_alone(lms):
    lm, ids = lms["qwen2"], texts(seed=3)
    runs = [("h2o", 10), ("quest", 12, {"page_size": 4}), ("snapkv", 9, {"window": 4}), ("spatten", 10)]
    together = policy_perplexity(lm, ids, PREFIX, SCORE, runs=runs, group=5)
    alone = policy_perplexity(lm, ids, PREFIX, SCORE, runs=runs, group=1)
    for a, b in zip(together.rows, alone.rows):
        assert a.policy == b.policy and a.nll == pytest.approx(b.nll, abs=1e-5)
        assert a.recall == pytest.approx(b.recall, abs=1e-6) and a.kv_bytes_per_step == b.kv_bytes_per_step


def test_replayed_prefill_equals_the_policy_running_its_own_prefill(lms):
    """start_policies (one dense prefill, probabilities replayed in chunks) == SparseAttention's own prefill."""
    lm, ids = lms["llama"], texts(batch=1)
    tokens = ids[:, PREFIX:PREFIX + 5]
    for name in ("h2o", "snapkv", "spatten"):
        own = SparseAttention(get_selector(name, budget=9))
        cache = lm.new_cache()
        with lm.attention(own):
            lm.forward(ids[:, :PREFIX], cache=cache)
            expected = torch.stack([lm.forward(tokens[:, i:i + 1], cache=cache).logits[0, -1] for i in range(5)])
        pre = dense_prefill(lm, ids[:, :PREFIX])
        attn = SparseAttention(get_selector(name, budget=9))
        start_policies(pre, [attn], chunk=16)
        _, got = decode(lm, attn, pre, 5, tokens=tokens)
        torch.testing.assert_close(got[0, 0], expected, atol=1e-5, rtol=1e-5)


def test_recall_records_match_the_metrics():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(2, 6, 1, 8, generator=g), torch.randn(2, 2, 30, 8, generator=g), torch.randn(2, 2, 30, 8, generator=g)
    attn = SparseAttention(get_selector("streaming_llm", budget=7, sinks=2), track_recall=True)
    attn.start_from_prefill(0, torch.randn(2, 6, 29, 8, generator=g), k[:, :, :29], 0.3)
    attn(q, k, v, layer_idx=0, scaling=0.3, attention_mask=None)
    idx = torch.tensor([0, 1, 25, 26, 27, 28, 29]).expand(2, 2, 7)
    (rec,) = attn.recalls
    assert rec.recall == pytest.approx(float(mass_recall(q[:, :, 0], k, idx, 0.3).mean()), abs=1e-6)
    counts = torch.full((2, 2), 7)
    assert rec.oracle_recall == pytest.approx(float(oracle_mass_recall(q[:, :, 0], k, counts, 0.3).mean()), abs=1e-6)


def test_bad_input_is_refused_before_work(lms):
    lm, ids = lms["llama"], texts()
    calls = lm.counters.forward_calls
    with pytest.raises(ValueError, match="budget: tokens must be > 0"):
        policy_perplexity(lm, ids, PREFIX, SCORE, runs=[("h2o", 0)])
    with pytest.raises(ValueError, match="budget: 60 tokens is larger than the context"):
        policy_perplexity(lm, ids, PREFIX, SCORE, runs=[("h2o", 60)])
    with pytest.raises(ValueError, match="prefix \\+ score = 300 tokens exceed the model's context of 256"):
        policy_perplexity(lm, texts(length=301), 250, 50, runs=[])
    with pytest.raises(ValueError, match="ids: need prefix \\+ score \\+ 1 = 53"):
        policy_perplexity(lm, ids[:, :50], PREFIX, SCORE, runs=[])
    with pytest.raises(ValueError, match="score must be an int >= 1"):
        policy_perplexity(lm, ids, PREFIX, 0, runs=[])
    with pytest.raises(ValueError, match="unknown sparse attention policy 'nope'"):
        policy_perplexity(lm, ids, PREFIX, SCORE, runs=[("nope", 8)])
    assert lm.counters.forward_calls == calls


def test_runs_of_one_policy_share_what_it_learned_at_prefill(lms):
    """Budgets of the same learning policy start from a copy of one observation: same result as separately."""
    lm, ids = lms["llama"], texts(seed=5)
    runs = [("h2o", 9), ("keyformer", 10), ("h2o", 14), ("spatten", 9), ("keyformer", 13), ("spatten", 12)]
    shared = policy_perplexity(lm, ids, PREFIX, SCORE, runs=runs, group=6)
    for run, row in zip(runs, shared.rows[1:]):
        alone = policy_perplexity(lm, ids, PREFIX, SCORE, runs=[run]).rows[1]
        assert (row.policy, row.budget) == run and row.nll == pytest.approx(alone.nll, abs=1e-6)


def test_runs_of_one_policy_share_its_prefill_decision(lms):
    """SnapKV / Zero-TPrune / FASA decide from the prompt once (prepare) for all budgets: same as separately."""
    lm, ids = lms["llama"], texts(seed=6)
    runs = [("snapkv", 9, {"window": 4}), ("zero_tprune", 10), ("fasa", 9), ("snapkv", 14, {"window": 4}),
            ("zero_tprune", 15), ("fasa", 12), ("fasa", 12, {"chunk_size": 2})]
    shared = policy_perplexity(lm, ids, PREFIX, SCORE, runs=runs, group=7)
    for run, row in zip(runs, shared.rows[1:]):
        alone = policy_perplexity(lm, ids, PREFIX, SCORE, runs=[run]).rows[1]
        assert (row.policy, row.budget) == run[:2] and row.nll == pytest.approx(alone.nll, abs=1e-6)
