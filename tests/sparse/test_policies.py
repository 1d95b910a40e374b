import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import every_layer_sparse, make_qkv
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.sparse import PAD, SELECTORS, Budget, LayerState, get_selector, mass_recall, sparse_attention
from workbench.sparse.policies import page_bounds, page_upper_bound

ALL = sorted(SELECTORS)
BUDGETED = [n for n in ALL if n != "full"]


def test_registry_has_the_policies():
    assert {"full", "oracle", "streaming_llm", "h2o", "snapkv", "quest", "tokenselect", "keyformer"} <= set(ALL)
    for name in ALL:
        sel = get_selector(name, budget=4)
        assert sel.name == name and type(sel).__module__.startswith("workbench.sparse.policies.")
    import re
    import sys

    for name in BUDGETED:
        if name != "oracle":  # every published policy's module docstring cites its paper and year
            doc = sys.modules[SELECTORS[name].__module__].__doc__
            assert re.search(r"Paper: \".+?\"\s+\(.+?,\s+20\d\d\)", doc, re.DOTALL), name


def test_unknown_policy_lists_known_names():
    with pytest.raises(ValueError, match="unknown sparse attention policy 'h3o'; known: .*h2o.*quest"):
        get_selector("h3o", budget=4)


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="no option.*page_size"):
        get_selector("h2o", budget=4, page_size=3)


def run_policy(name, q, k, pq, budget, **params):
    """Prefill observation (if the policy learns from attention), then one decode step."""
    sel = get_selector(name, budget=budget, **{**every_layer_sparse(name), **params})
    state = LayerState(q, k, prefill_queries=pq)
    if sel.needs_observe:
        p = pq.shape[2]
        g = q.shape[1] // k.shape[1]
        kr = k[:, :, :p].repeat_interleave(g, dim=1)
        logits = pq @ kr.transpose(-1, -2) / math.sqrt(q.shape[-1])
        causal = torch.ones(p, p, dtype=torch.bool).tril()
        sel.observe(state, logits.masked_fill(~causal, float("-inf")).softmax(-1))
    return sel, state, sel.select(state)


def check_well_formed(idx, batch, kv_heads, context, k):
    assert idx.dtype == torch.long and idx.shape == (batch, kv_heads, k)
    for row in idx.reshape(-1, k).tolist():
        assert row == sorted(set(row)) and all(0 <= i < context for i in row)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("extra", [0, 7])
def test_budget_at_least_context_selects_everything(name, extra):
    q, k, v, pq = make_qkv(10, context=30, prefill=20)
    _, _, idx = run_policy(name, q, k, pq, 30 + extra)
    assert torch.equal(idx, torch.arange(30).expand(2, 2, 30))
    full = F.scaled_dot_product_attention(q.unsqueeze(2), k, v, enable_gqa=True).squeeze(2)
    torch.testing.assert_close(sparse_attention(q, k, v, idx), full, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", BUDGETED)
@pytest.mark.parametrize("budget", [1, 5, 13])
def test_selection_is_sorted_unique_and_within_budget(name, budget):
    q, k, _, pq = make_qkv(11, context=37, prefill=30)
    _, _, idx = run_policy(name, q, k, pq, budget)
    check_well_formed(idx, 2, 2, 37, budget)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("budget", [3, 8, 20])
def test_oracle_recall_is_maximal(seed, budget):
    q, k, _, pq = make_qkv(seed, heads=8, kv_heads=2, context=48, prefill=40)
    recall = {n: mass_recall(q, k, run_policy(n, q, k, pq, budget)[2]).mean().item() for n in BUDGETED}
    assert all(recall["oracle"] >= r - 1e-6 for r in recall.values()), recall


def test_oracle_matches_exhaustive_search():
    q, k, _, _ = make_qkv(3, batch=1, heads=4, kv_heads=2, context=8, dim=4)
    idx = get_selector("oracle", budget=3).select(LayerState(q, k))
    probs = (q.view(1, 2, 2, 4) @ k.transpose(-1, -2) / 2).softmax(-1)  # [1, H_kv, group, S]
    for g in range(2):
        best = max(itertools.combinations(range(8), 3), key=lambda c: probs[0, g][:, list(c)].sum().item())
        assert idx[0, g].tolist() == list(best)


@pytest.mark.parametrize("budget,sinks", [(10, 4), (3, 4), (4, 4), (9, 0), (12, 2)])
def test_streaming_llm_is_sinks_and_recent_window(budget, sinks):
    q, k, _, _ = make_qkv(12, context=25)
    idx = get_selector("streaming_llm", budget=budget, sinks=sinks).select(LayerState(q, k))
    n_sink = min(sinks, budget)
    expected = sorted(set(range(n_sink)) | set(range(25 - (budget - n_sink), 25)))
    for row in idx.reshape(-1, budget).tolist():
        assert row == expected


def heavy_hitter_case():
    """Prefill where every query attends almost only to positions 3 and 7."""
    torch.manual_seed(0)
    b, h, h_kv, p, d = 1, 4, 2, 24, 8
    k = torch.randn(b, h_kv, p + 1, d) * 0.1
    k[:, :, 3] = 0
    k[:, :, 7] = 0
    k[:, :, 3, 0] = 6.0
    k[:, :, 7, 1] = 6.0
    pq = torch.zeros(b, h, p, d)
    pq[..., 0] = 6.0
    pq[..., 1] = 6.0
    q = torch.randn(b, h, d)
    return q, k, pq


@pytest.mark.parametrize("name", ["h2o", "keyformer"])
def test_accumulated_attention_keeps_heavy_hitters(name):
    q, k, pq = heavy_hitter_case()
    idx = run_policy(name, q, k, pq, 6)[2]
    for row in idx.reshape(-1, 6).tolist():
        assert 3 in row and 7 in row
        assert 24 in row  # the current token is in the recent window


def test_h2o_budget_split_and_permanent_eviction():
    q, k, pq = heavy_hitter_case()
    sel, state, idx = run_policy("h2o", q, k, pq, 6)
    for row in idx.reshape(-1, 6).tolist():  # recent = 6 - floor(6 * 0.5) = 3 positions, heavy = 3
        assert len(row) == 6 and set(row) >= {3, 7, 22, 23, 24}
    first = set(idx[0, 0].tolist())
    evicted = set(range(25)) - first
    gen = torch.Generator().manual_seed(1)
    for step in range(5):
        keys = torch.cat([state.keys, torch.randn(1, 2, 1, 8, generator=gen)], 2)
        state.update(torch.randn(1, 4, 8, generator=gen), keys)
        _, probs = sparse_attention(state.query, keys, keys, idx := sel.select(state), return_probs=True)
        sel.observe(state, probs.unsqueeze(2))
        assert not (set(idx[0, 0].tolist()) & evicted)
        evicted |= set(range(keys.shape[2])) - set(idx[0, 0].tolist())


def test_snapkv_keeps_voted_tokens_their_neighbours_and_the_window():
    torch.manual_seed(0)
    b, h, h_kv, p, d = 1, 2, 1, 40, 8
    k = torch.randn(b, h_kv, p + 2, d) * 0.1
    k[:, :, 10, 0] = 8.0
    pq = torch.randn(b, h, p, d) * 0.1
    pq[:, :, -8:, 0] = 8.0  # the observation window looks at position 10
    sel = get_selector("snapkv", budget=8 + 2 + 3, window=8, kernel_size=3)
    idx = sel.select(LayerState(torch.randn(b, h, d), k, prefill_queries=pq))[0, 0].tolist()
    assert {9, 10, 11} <= set(idx)  # the voted token and its pooled neighbours
    assert set(range(32, 42)) <= set(idx)  # window (32..39) and the generated tokens 40, 41


def test_snapkv_needs_prefill_queries():
    q, k, _, _ = make_qkv(0)
    with pytest.raises(ValueError, match="snapkv needs the prompt's queries"):
        get_selector("snapkv", budget=4).select(LayerState(q, k))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), context=st.integers(1, 70), page=st.integers(1, 17))
def test_quest_page_bound_is_an_upper_bound(seed, context, page):
    q, k, _, _ = make_qkv(seed, batch=1, heads=4, kv_heads=2, context=context, dim=5)
    kmin, kmax = page_bounds(k, page)
    bound = page_upper_bound(q, kmin, kmax)
    assert bound.shape == (1, 4, math.ceil(context / page))
    for h in range(4):
        dots = k[0, h // 2] @ q[0, h]
        for s in range(context):
            assert dots[s] <= bound[0, h, s // page] + 1e-5


def test_quest_page_bounds_brute_force():
    _, k, _, _ = make_qkv(0, batch=1, kv_heads=1, context=10, dim=3)
    kmin, kmax = page_bounds(k, 4)
    for page, (lo, hi) in enumerate([(0, 4), (4, 8), (8, 10)]):
        for c in range(3):
            col = [k[0, 0, s, c].item() for s in range(lo, hi)]
            assert kmin[0, 0, page, c].item() == min(col) and kmax[0, 0, page, c].item() == max(col)


def test_quest_selects_whole_top_pages():
    q, k, _, _ = make_qkv(7, batch=1, heads=2, kv_heads=1, context=40, dim=8)
    k[0, 0, 20:24] += 3 * q[0, 0] / q[0, 0].norm()  # make page 5 (positions 20..23) clearly the best
    idx = get_selector("quest", budget=8, page_size=4, dense_layers=0).select(LayerState(q, k))[0, 0].tolist()
    assert idx == [20, 21, 22, 23, 36, 37, 38, 39]  # the best page and the current (last) page


def test_quest_reads_its_first_dense_layers_in_full_and_pages_after_them():
    q, k, _, _ = make_qkv(7, batch=1, heads=2, kv_heads=1, context=40, dim=8)
    sel, everywhere = get_selector("quest", budget=8, page_size=4), get_selector("quest", budget=8, page_size=4,
                                                                                   dense_layers=0)
    assert sel.dense_layers == 2  # the paper's setting
    for layer in (0, 1):
        state = LayerState(q, k, layer_idx=layer)
        assert sel.select(state)[0, 0].tolist() == list(range(40)) and sel.extra_bytes(state, 4) == 0
    state = LayerState(q, k, layer_idx=2)
    assert torch.equal(sel.select(state), everywhere.select(state)) and sel.extra_bytes(state, 4) == 10 * 2 * 8 * 4


def test_quest_softmax_sum_reduction_by_hand():
    q, k, _, _ = make_qkv(11, batch=1, heads=4, kv_heads=2, context=37, dim=6)
    sel = get_selector("quest", budget=12, page_size=4, dense_layers=0, group_reduce="softmax_sum")
    idx = sel.select(LayerState(q, k))
    scale = 6 ** -0.5
    for g in range(2):
        per_head = []  # each query head's softmax over its page bounds (on the logit scale)
        for h in (2 * g, 2 * g + 1):
            terms = []
            for p in range(10):  # 37 keys: pages 0..8 full, page 9 holds position 36 only
                keys = k[0, g, 4 * p:4 * p + 4]
                terms.append(math.exp(sum(max(q[0, h, c] * keys[:, c].max(), q[0, h, c] * keys[:, c].min()).item()
                                          for c in range(6)) * scale))
            per_head.append([t / sum(terms) for t in terms])
        score = [per_head[0][p] + per_head[1][p] for p in range(10)]
        best = sorted(range(9), key=lambda p: -score[p])[:3]  # the current page (36) plus 11 more tokens
        expected = {36} | {4 * p + i for p in best[:2] for i in range(4)} | {4 * best[2] + i for i in (1, 2, 3)}
        assert set(idx[0, g].tolist()) == expected


def test_quest_sink_pages_are_always_read():
    q, k, _, _ = make_qkv(7, batch=1, heads=2, kv_heads=1, context=40, dim=8)
    k[0, 0, 20:24] += 3 * q[0, 0] / q[0, 0].norm()  # page 5 clearly the best (as in the test above)
    k[0, 0, 0:4] -= 3 * q[0, 0] / q[0, 0].norm()  # page 0 clearly among the worst
    idx = get_selector("quest", budget=12, page_size=4, dense_layers=0, sink_pages=1).select(LayerState(q, k))
    assert idx[0, 0].tolist() == [0, 1, 2, 3, 20, 21, 22, 23, 36, 37, 38, 39]


def test_tokenselect_reuses_cache_for_similar_queries_and_recomputes_otherwise():
    q, k, _, _ = make_qkv(8, batch=1, heads=4, kv_heads=2, context=30)
    sel = get_selector("tokenselect", budget=6, threshold=0.95, recent=1)
    state = LayerState(q, k)
    first = sel.select(state)
    assert not state.memory["tokenselect.reused"].any()
    voted = [set(first[0, g].tolist()) - {29} for g in range(2)]
    # next step: nearly the same query; the keys of the voted tokens are scrambled, so a fresh vote would differ
    k2 = torch.cat([k, torch.randn(1, 2, 1, 8)], 2)
    for g in range(2):
        k2[0, g, sorted(voted[g])] = -10 * q[0, 2 * g] / q[0, 2 * g].norm()
    state.update(q + 1e-3, k2)
    second = sel.select(state)
    assert state.memory["tokenselect.reused"].all()
    assert sel.extra_bytes(state, 4) == 0
    votes = sel.votes(LayerState(q, k))  # the first step's votes: the cached ranking
    for g in range(2):
        # the previous token (29) left the recent window: it takes the place of the lowest-voted cached token
        lowest = min(voted[g], key=lambda i: (votes[0, g, i].item(), -i))
        assert set(second[0, g].tolist()) == (voted[g] - {lowest}) | {29, 30}
    # a dissimilar query: recomputed from the current keys, equal to a fresh selector's choice
    state.update(-q, k2)
    third = sel.select(state)
    assert not state.memory["tokenselect.reused"].any()
    assert sel.extra_bytes(state, 4) == 2 * 31 * 8 * 4
    assert torch.equal(third, get_selector("tokenselect", budget=6, threshold=0.95, recent=1).select(LayerState(-q, k2)))


def test_tokenselect_reused_steps_keep_the_budget_and_every_token_that_left_the_recent_window():
    q, k, _, _ = make_qkv(10, batch=1, heads=4, kv_heads=2, context=30)
    sel = get_selector("tokenselect", budget=8, threshold=0.5, recent=2)
    state = LayerState(q, k)
    sel.select(state)
    for step in range(1, 4):  # three reused steps: positions 28, 29, 30 leave the recent window one by one
        k = torch.cat([k, torch.randn(1, 2, 1, 8)], 2)
        state.update(q + 1e-3 * step, k)
        idx = sel.select(state)
        assert state.memory["tokenselect.reused"].all()
        for g in range(2):
            chosen = idx[0, g].tolist()
            assert len(chosen) == 8 and len(set(chosen)) == 8
            assert set(range(28, 28 + step)) <= set(chosen)  # handed over from the recent window
            assert {k.shape[2] - 2, k.shape[2] - 1} <= set(chosen)  # the recent window itself


def test_tokenselect_layer_vote_is_shared_by_all_kv_heads():
    q, k, _, _ = make_qkv(9, batch=1, heads=4, kv_heads=2, context=30)
    k[0, 1] = k[0, 0]
    idx = get_selector("tokenselect", budget=5, vote_over="layer", recent=0).select(LayerState(q, k))
    assert torch.equal(idx[0, 0], idx[0, 1])


def test_keyformer_is_reproducible_by_seed():
    q, k, pq = heavy_hitter_case()
    a = run_policy("keyformer", q, k, pq, 5, seed=3)[2]
    b = run_policy("keyformer", q, k, pq, 5, seed=3)[2]
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["oracle", "tokenselect", "quest"])
def test_gqa_group_aggregation(name):
    """A KV head's selection depends on its own query heads only, symmetrically."""
    q, k, _, _ = make_qkv(13, batch=1, heads=6, kv_heads=2, context=40)
    sel = get_selector(name, budget=7)
    base = sel.select(LayerState(q, k))
    swapped_within = q[:, [1, 0, 2, 3, 4, 5]]
    assert torch.equal(sel.select(LayerState(swapped_within, k)), base)
    changed_other_group = q.clone()
    changed_other_group[:, 3:] = torch.randn(1, 3, 8)
    assert torch.equal(sel.select(LayerState(changed_other_group, k))[:, 0], base[:, 0])


def test_per_head_budgets_pad_short_rows():
    q, k, v, _ = make_qkv(14, batch=1, heads=4, kv_heads=2, context=20)
    idx = get_selector("oracle", budget=Budget(heads=(2, 5))).select(LayerState(q, k))
    assert idx.shape == (1, 2, 5)
    assert (idx[0, 0, 2:] == PAD).all() and (idx[0, 0, :2] != PAD).all() and (idx[0, 1] != PAD).all()
    mask = torch.zeros(1, 4, 1, 20, dtype=torch.bool)
    for h in range(4):
        mask[0, h, 0, [i for i in idx[0, h // 2].tolist() if i != PAD]] = True
    expected = F.scaled_dot_product_attention(q.unsqueeze(2), k, v, attn_mask=mask, enable_gqa=True).squeeze(2)
    torch.testing.assert_close(sparse_attention(q, k, v, idx), expected, atol=1e-6, rtol=1e-5)


def test_head_group_mismatch_is_a_clear_error():
    q, k, _, _ = make_qkv(0, heads=6, kv_heads=4)
    with pytest.raises(ValueError, match=r"num_heads \(6\) must be a multiple of num_kv_heads \(4\)"):
        LayerState(q, k)


@pytest.mark.parametrize("name,params,match", [
    ("streaming_llm", {"sinks": -1}, "sinks"), ("h2o", {"recent_fraction": 1.5}, "recent_fraction"),
    ("quest", {"page_size": 0}, "page_size"), ("quest", {"dense_layers": -1}, "dense_layers"),
    ("quest", {"group_reduce": "mean"}, "group_reduce must be one of"), ("quest", {"sink_pages": -1}, "sink_pages"),
    ("snapkv", {"kernel_size": 4}, "kernel_size"),
    ("tokenselect", {"vote_over": "all"}, "vote_over"), ("keyformer", {"tau_init": 0}, "tau_init"),
])
def test_bad_policy_parameters(name, params, match):
    with pytest.raises(ValueError, match=match):
        get_selector(name, budget=4, **params)


@pytest.mark.parametrize("tau", [1.0, 1.6, 0.3])
def test_keyformer_score_without_logs_equals_the_gumbel_softmax(tau):
    from workbench.sparse.policies.keyformer import gumbel_softmax_of_probs, gumbel_softmax_reference

    g = torch.Generator().manual_seed(2)
    probs = torch.rand(2, 3, 5, 17, generator=g).softmax(-1)
    probs[..., 11:] = 0  # tokens not read
    probs[0, 1, 2] = 0  # a row that read nothing scores nothing
    u = torch.rand(probs.shape, generator=g).clamp_(1e-20, 1 - 1e-7)
    got = gumbel_softmax_of_probs(probs, u, tau)
    torch.testing.assert_close(got, gumbel_softmax_reference(probs, u, tau), atol=1e-6, rtol=1e-5)
    assert not got[..., 11:].any() and not got[0, 1, 2].any()
