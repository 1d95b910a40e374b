import json
import math

import pytest
import torch
from conftest import every_layer_sparse, make_qkv

from workbench.sparse import (
    PAD,
    SELECTORS,
    Budget,
    LayerState,
    dense_kv_bytes,
    evaluate_selection,
    get_selector,
    mass_recall,
    normalized_recall,
    output_error,
    selected_kv_bytes,
    speedup_bound,
)
from workbench.sparse.metrics import oracle_mass_recall
from workbench.sparse.selector import Selector


def test_mass_recall_brute_force():
    q, k, _, _ = make_qkv(0, batch=1, heads=2, kv_heads=1, context=6, dim=4)
    idx = torch.tensor([[[1, 4]]])
    r = mass_recall(q, k, idx)
    for h in range(2):
        w = [math.exp(float(q[0, h] @ k[0, 0, s]) / 2) for s in range(6)]
        assert r[0, h].item() == pytest.approx((w[1] + w[4]) / sum(w), rel=1e-5)


def test_oracle_recall_is_normalisation_of_one():
    q, k, _, _ = make_qkv(1, context=30)
    idx = get_selector("oracle", budget=5).select(LayerState(q, k))
    torch.testing.assert_close(normalized_recall(q, k, idx), torch.ones(2, 6))
    torch.testing.assert_close(mass_recall(q, k, idx), oracle_mass_recall(q, k, torch.full((2, 2), 5)))
    worst = get_selector("streaming_llm", budget=5).select(LayerState(q, k))
    assert (normalized_recall(q, k, worst) <= 1 + 1e-6).all()


def test_output_error_brute_force():
    q, k, v, _ = make_qkv(2, batch=1, heads=1, kv_heads=1, context=4, dim=2)
    assert output_error(q, k, v, torch.arange(4).view(1, 1, 4)).item() == pytest.approx(0, abs=1e-6)
    logits = [float(q[0, 0] @ k[0, 0, s]) / math.sqrt(2) for s in range(4)]

    def attend(pos):
        w = [math.exp(logits[s]) for s in pos]
        return sum(w[i] / sum(w) * v[0, 0, s] for i, s in enumerate(pos))

    full, part = attend(range(4)), attend([0, 3])
    expected = (part - full).norm() / full.norm()
    assert output_error(q, k, v, torch.tensor([[[0, 3]]])).item() == pytest.approx(expected.item(), rel=1e-5)


def test_byte_counts():
    idx = torch.tensor([[[0, 1, PAD], [2, 3, 4]]])
    assert selected_kv_bytes(idx, head_dim=64, elem_bytes=2) == 5 * 64 * 2 * 2
    assert dense_kv_bytes(1, 2, 100, 64, 2) == 2 * 100 * 64 * 2 * 2


def test_speedup_bound_known_values():
    assert speedup_bound(32768, 2048, 0.0) == 16.0
    assert speedup_bound(32768, 2048, 2 / 16) == 8.0  # Quest with 16-token pages
    assert speedup_bound(32768, 2048, 1.0) == pytest.approx(65536 / 36864)
    assert speedup_bound(100, 100, 0.0) == 1.0
    for args, match in [((0, 1, 0), "context_len"), ((10, 0, 0), "budget"), ((10, 11, 0), "budget"),
                        ((10, 5, -1), "scored_fraction")]:
        with pytest.raises(ValueError, match=match):
            speedup_bound(*args)


def test_report_for_full_attention():
    q, k, v, _ = make_qkv(3, context=32, dtype=torch.float16)
    r = evaluate_selection(get_selector("full"), q, k, v)
    assert r.recall == pytest.approx(1.0) and r.output_rel_error == pytest.approx(0.0, abs=1e-6)
    assert r.kv_bytes == r.dense_kv_bytes == 2 * 2 * 32 * 8 * 2 * 2
    assert r.metadata_bytes == 0 and r.index_bytes == 0 and r.speedup_bound == 1.0
    assert r.total_bytes == r.dense_kv_bytes
    d = r.to_dict()
    assert json.loads(json.dumps(d))["policy"] == "full" and d["dtype"] == "float16"
    assert "full" in repr(r) and "<table>" in r._repr_html_()


def test_report_counts_policy_metadata_honestly():
    q, k, v, _ = make_qkv(4, context=50)
    quest = evaluate_selection(get_selector("quest", budget=16, page_size=8, dense_layers=0), q, k, v)
    assert quest.metadata_bytes == 2 * 2 * 7 * 2 * 8 * 4  # batch x kv heads x pages x (min, max) x D x fp32
    assert quest.scored_fraction == pytest.approx(14 / 50)
    assert quest.speedup_bound == pytest.approx(2 * 50 / (14 + 2 * 16))
    oracle = evaluate_selection(get_selector("oracle", budget=16), q, k, v)
    assert oracle.scored_fraction == 1.0 and oracle.kv_bytes == 2 * 2 * 16 * 8 * 2 * 4
    assert oracle.index_bytes == 2 * 2 * 16 * 4  # int32 indices
    stream = evaluate_selection(get_selector("streaming_llm", budget=16), q, k, v)
    assert stream.metadata_bytes == 0 and stream.speedup_bound == pytest.approx(50 / 16)
    assert oracle.recall >= max(quest.recall, stream.recall)


class Spy(Selector):
    calls = 0

    def select(self, state):
        Spy.calls += 1
        return torch.zeros(state.batch, state.num_kv_heads, 1, dtype=torch.long)


def test_budget_larger_than_context_refused_before_work():
    q, k, v, _ = make_qkv(5, context=20)
    with pytest.raises(ValueError, match=r"budget: 21 tokens is larger than the context \(20 tokens\)"):
        evaluate_selection(Spy(budget=21), q, k, v)
    assert Spy.calls == 0
    with pytest.raises(ValueError, match="budget"):
        evaluate_selection(get_selector("h2o", budget=Budget(tokens=4, layers={1: 30})), q, k, v, layer_idx=1)


@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_every_policy_evaluates_with_prefill(name):
    q, k, v, pq = make_qkv(6, context=40, prefill=32)
    r = evaluate_selection(get_selector(name, budget=10, **every_layer_sparse(name)), q, k, v, prefill_queries=pq)
    assert 0 < r.recall <= r.oracle_recall + 1e-6 <= 1 + 2e-6
    assert r.selected_per_head == (40 if name == "full" else 10)
