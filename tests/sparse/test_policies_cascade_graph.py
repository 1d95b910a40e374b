"""SpAtten, Landmark-style retrieval, Zero-TPrune and FASA: known answers and their specific invariants.
(Budget >= context, sortedness, within-budget and oracle-dominance are covered for every policy in
test_policies.py, which runs over the whole registry.)"""
import math

import numpy as np
import pytest
import torch
from conftest import make_qkv

from workbench.sparse import PAD, LayerState, get_selector, sparse_attention
from workbench.sparse.policies.fasa import (
    calibration_rows,
    chunk_dims,
    chunk_dominance,
    chunk_dominance_reference,
)
from workbench.sparse.policies.landmark import block_landmarks
from workbench.sparse.policies.zero_tprune import causal_pagerank, weighted_pagerank


def causal_probs(pq, k):
    g = pq.shape[1] // k.shape[1]
    p = pq.shape[2]
    logits = pq @ k[:, :, :p].repeat_interleave(g, 1).transpose(-1, -2) / math.sqrt(pq.shape[-1])
    return logits.masked_fill(~torch.ones(p, p, dtype=torch.bool).tril(), float("-inf")).softmax(-1)


# ---- Zero-TPrune -------------------------------------------------------------------------------------------
def eigen_reference(a: np.ndarray, damping: float) -> np.ndarray:
    """Stationary vector of the damped walk: eigenvector for eigenvalue 1 of d*A^T + (1-d)/N * ones."""
    n = a.shape[0]
    m = damping * a.T + (1 - damping) / n * np.ones((n, n))
    vals, vecs = np.linalg.eig(m)
    v = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
    return v / v.sum()


@pytest.mark.parametrize("damping,causal", [(0.5, False), (0.85, False), (1.0, False), (0.5, True), (0.85, True)])
def test_pagerank_equals_the_eigenvector(damping, causal):
    rng = np.random.default_rng(0)
    a = rng.random((6, 6)) + 0.05
    if causal:
        a = np.tril(a)
    a /= a.sum(1, keepdims=True)
    got = weighted_pagerank(torch.tensor(a), damping, tol=1e-12).numpy()
    np.testing.assert_allclose(got, eigen_reference(a, damping), atol=1e-6)


def test_undamped_causal_pagerank_drains_into_the_first_token():
    a = np.tril(np.ones((5, 5)))
    a /= a.sum(1, keepdims=True)
    got = weighted_pagerank(torch.tensor(a), 1.0, tol=1e-10, max_iter=10_000).numpy()
    np.testing.assert_allclose(got, [1, 0, 0, 0, 0], atol=1e-5)


def test_pagerank_by_hand_on_a_star():
    """Three leaves attend only to the hub; the hub attends to itself: all rank ends at the hub (d = 1)."""
    a = torch.tensor([[1.0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]])
    assert weighted_pagerank(a, 1.0).tolist() == pytest.approx([1, 0, 0, 0], abs=1e-6)
    # damped: leaves keep only the teleport share (1-d)/N, the hub the rest
    d = 0.8
    got = weighted_pagerank(a, d, tol=1e-12)
    assert got[1:].tolist() == pytest.approx([(1 - d) / 4] * 3, abs=1e-6)


@pytest.mark.parametrize("damping", [0.3, 0.85, 0.99])
def test_causal_pagerank_solve_equals_the_power_iteration(damping):
    rng = np.random.default_rng(1)
    a = np.tril(rng.random((3, 40, 40)) ** 4)  # uneven weights, some nearly zero
    a /= a.sum(-1, keepdims=True)
    got = causal_pagerank(torch.tensor(a), damping)
    torch.testing.assert_close(got, weighted_pagerank(torch.tensor(a), damping, tol=1e-13, max_iter=100_000),
                               atol=1e-7, rtol=1e-5)
    np.testing.assert_allclose(got[1].numpy(), eigen_reference(a[1], damping), atol=1e-6)
    with pytest.raises(ValueError, match="damping"):
        causal_pagerank(torch.tensor(a), 1.0)


def test_zero_tprune_importance_equals_pagerank_of_the_whole_attention():
    """Per-head attention + triangular solve == all heads' [P, P] attention through the power iteration."""
    q, k, _, pq = make_qkv(8, batch=2, heads=6, kv_heads=2, context=30, prefill=26)
    state = LayerState(q, k, prefill_queries=pq)
    got = get_selector("zero_tprune", budget=10).importance(state)
    attn = causal_probs(pq, k).reshape(2, 2, 3, 26, 26)
    expected = weighted_pagerank(attn, 0.85, tol=1e-12, max_iter=10_000).sum(2)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_zero_tprune_keeps_the_hub_and_generated_tokens():
    torch.manual_seed(0)
    b, h, h_kv, p, d = 1, 4, 2, 20, 8
    k = torch.randn(b, h_kv, p + 3, d) * 0.1
    k[:, :, 9, 0] = 8.0
    pq = torch.randn(b, h, p, d) * 0.1
    pq[..., 0] = 8.0  # every prompt query attends to position 9 (once it is visible)
    idx = get_selector("zero_tprune", budget=5).select(LayerState(torch.randn(b, h, d), k, prefill_queries=pq))
    for row in idx.reshape(-1, 5).tolist():
        assert 9 in row and {20, 21, 22} <= set(row)
    ref = weighted_pagerank(causal_probs(pq, k).reshape(1, 2, 2, p, p), 0.85).sum(2)
    sel = get_selector("zero_tprune", budget=5)
    state = LayerState(torch.randn(b, h, d), k, prefill_queries=pq)
    sel.select(state)
    torch.testing.assert_close(state.memory["zero_tprune.importance"], ref)


def test_zero_tprune_needs_prefill_queries():
    q, k, _, _ = make_qkv(0)
    with pytest.raises(ValueError, match="zero_tprune needs the prompt's queries"):
        get_selector("zero_tprune", budget=4).select(LayerState(q, k))


# ---- Landmark ----------------------------------------------------------------------------------------------
def test_landmarks_are_block_means_and_score_the_mean_logit():
    q, k, _, _ = make_qkv(3, batch=1, heads=2, kv_heads=1, context=11, dim=4)
    lm = block_landmarks(k, 4)
    for blk, (lo, hi) in enumerate([(0, 4), (4, 8), (8, 11)]):
        torch.testing.assert_close(lm[0, 0, blk], k[0, 0, lo:hi].mean(0))
        torch.testing.assert_close(lm[0, 0, blk] @ q[0, 0], (k[0, 0, lo:hi] @ q[0, 0]).mean())


def test_landmark_reads_the_local_block_and_the_best_blocks():
    q, k, _, _ = make_qkv(7, batch=1, heads=2, kv_heads=1, context=40, dim=8)
    k[0, 0, 8:12] += 4 * q[0].sum(0) / q[0].sum(0).norm()  # block 2 (positions 8..11) clearly best
    sel = get_selector("landmark", budget=8, block_size=4, local_blocks=1)
    idx = sel.select(LayerState(q, k))[0, 0].tolist()
    assert idx == [8, 9, 10, 11, 36, 37, 38, 39]
    assert sel.extra_bytes(LayerState(q, k), 4) == 10 * 8 * 4


def test_landmark_differs_from_quest_on_a_lone_strong_key():
    """One very strong key among weak ones: Quest's upper bound finds its page, the block mean can miss it."""
    torch.manual_seed(1)
    q = torch.zeros(1, 1, 4)
    q[0, 0, 0] = 1.0
    k = torch.zeros(1, 1, 16, 4)
    k[0, 0, 0:4, 0] = torch.tensor([6.0, -5, -5, -5])  # block 0: one strong key, mean -2.25
    k[0, 0, 4:8, 0] = 0.5  # block 1: uniformly mild, mean 0.5
    state = LayerState(q, k)
    # both always read the current page / block (12..15); the other 4 tokens show the difference
    quest = get_selector("quest", budget=8, page_size=4, dense_layers=0).select(state)[0, 0].tolist()
    landmark = get_selector("landmark", budget=8, block_size=4, local_blocks=1).select(state)[0, 0].tolist()
    assert quest == [0, 1, 2, 3, 12, 13, 14, 15] and landmark == [4, 5, 6, 7, 12, 13, 14, 15]


# ---- FASA --------------------------------------------------------------------------------------------------
def test_chunk_dims_follow_rotate_half():
    assert chunk_dims(8, 2) == [[0, 4, 1, 5], [2, 6, 3, 7]]
    assert chunk_dims(6, 2) == [[0, 3, 1, 4], [2, 5]]
    with pytest.raises(ValueError, match="even head_dim"):
        chunk_dims(5, 1)


def test_chunk_dominance_brute_force():
    _, k, _, pq = make_qkv(4, batch=1, heads=2, kv_heads=1, context=5, dim=4, prefill=5)
    got = chunk_dominance(pq, k, 1)
    for c, dims in enumerate(chunk_dims(4, 1)):
        total = 0.0
        for h in range(2):
            vals = [abs(float(pq[0, h, t, dims] @ k[0, 0, s, dims])) for t in range(5) for s in range(t + 1)]
            total += sum(vals) / len(vals)
        assert got[0, 0, c].item() == pytest.approx(total, rel=1e-5)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("block_elements", [1, 300, 1 << 24])
def test_chunk_dominance_in_row_blocks_equals_the_reference(causal, block_elements):
    """Blocks of query rows, chunks of unequal width (head_dim 10, chunk_size 2: 2 + 2 + 1 frequencies)."""
    _, k, _, pq = make_qkv(9, batch=2, heads=6, kv_heads=2, context=19, dim=10, prefill=13)
    got = chunk_dominance(pq, k, 2, causal, block_elements=block_elements)
    torch.testing.assert_close(got, chunk_dominance_reference(pq, k, 2, causal), atol=1e-6, rtol=1e-5)


def test_chunk_dominance_on_a_subset_of_rows_brute_force():
    _, k, _, pq = make_qkv(10, batch=1, heads=2, kv_heads=1, context=9, dim=4, prefill=7)
    rows = calibration_rows(7, 3)
    assert rows.tolist() == [0, 3, 6]
    for causal in (True, False):
        got = chunk_dominance(pq, k, 1, causal, rows=rows, block_elements=20)
        for c, dims in enumerate(chunk_dims(4, 1)):
            total = 0.0
            for h in range(2):
                vals = [abs(float(pq[0, h, t, dims] @ k[0, 0, j, dims])) for t in rows.tolist()
                        for j in range((t + 2 + 1) if causal else 9)]  # row t sits at key position 9 - 7 + t
                total += sum(vals) / len(vals)
            assert got[0, 0, c].item() == pytest.approx(total, rel=1e-5)


def test_fasa_calibrates_on_at_most_max_calibration_rows():
    q, k, _, pq = make_qkv(11, heads=6, kv_heads=2, context=40, prefill=36)
    state = LayerState(q, k, prefill_queries=pq)
    get_selector("fasa", budget=7, chunk_size=1, max_calibration_rows=5).select(state)
    dom = chunk_dominance(pq, k[:, :, :36], 1, rows=calibration_rows(36, 5))
    n = math.ceil(0.25 * dom.shape[-1])
    assert torch.equal(state.memory["fasa.chunks"], dom.argsort(dim=-1, descending=True, stable=True)[..., :n])


def test_fasa_with_every_frequency_equals_the_oracle():
    q, k, _, pq = make_qkv(5, heads=6, kv_heads=2, context=33, prefill=20)
    full = get_selector("fasa", budget=7, frequency_fraction=1.0).select(LayerState(q, k, prefill_queries=pq))
    assert torch.equal(full, get_selector("oracle", budget=7).select(LayerState(q, k)))


def test_fasa_finds_the_dominant_chunk_and_scores_with_it_only():
    g = torch.Generator().manual_seed(6)
    b, h, h_kv, s, d, p = 1, 2, 1, 30, 8, 20
    q = torch.randn(b, h, d, generator=g) * 0.01
    k = torch.randn(b, h_kv, s, d, generator=g) * 0.01
    pq = torch.randn(b, h, p, d, generator=g) * 0.01
    dims = chunk_dims(d, 1)[2]  # frequency 2: dims 2 and 6 carry the signal
    for t in (q, k, pq):
        t[..., dims] = torch.randn(*t.shape[:-1], 2, generator=g) * 3
    sel = get_selector("fasa", budget=6, chunk_size=1, frequency_fraction=0.25)
    state = LayerState(q, k, prefill_queries=pq)
    idx = sel.select(state)
    assert state.memory["fasa.chunks"][0, 0].tolist() == [2]
    assert sel.extra_bytes(state, 2) == 2 * s * 2  # two dims of every key
    masked = q.clone()
    masked[..., [i for i in range(d) if i not in dims]] = 0
    assert torch.equal(idx, get_selector("oracle", budget=6).select(LayerState(masked, k)))


# ---- SpAtten -----------------------------------------------------------------------------------------------
def spatten_two_layers(budgets, head_prune_fraction=0.0, seed=0):
    """A sequence through two layers sharing one SpAtten selector: prefill observation, then 4 decode steps."""
    q, k, _, pq = make_qkv(seed, batch=1, heads=4, kv_heads=2, context=24, prefill=20)
    from workbench.sparse import Budget

    sel = get_selector("spatten", budget=Budget(tokens=budgets[0], layers={1: budgets[1]}),
                       head_prune_fraction=head_prune_fraction)
    states = [LayerState(q, k[:, :, :20], layer_idx=i, prefill_queries=pq) for i in range(2)]
    for st in states:
        sel.observe(st, causal_probs(pq, k))
    gen = torch.Generator().manual_seed(seed + 1)
    history = []
    for step in range(4):
        keys = k[:, :, : 21 + step]
        q_step = torch.randn(1, 4, 8, generator=gen)
        row = []
        for st in states:
            st.update(q_step, keys)
            idx = sel.select(st)
            _, probs = sparse_attention(q_step, keys, keys, idx, return_probs=True)
            sel.observe(st, probs.unsqueeze(2))
            row.append(idx)
        history.append(row)
    return sel, states, history


def kept(idx):
    return {i for i in idx.flatten().tolist() if i != PAD}


def test_spatten_layers_share_one_cascade_and_pruned_tokens_never_return():
    _, states, history = spatten_two_layers((6, 10))
    assert states[0].memory["spatten.cascade"] is states[1].memory["spatten.cascade"]
    pruned = set()
    for step, (layer0, layer1) in enumerate(history):
        context = 21 + step
        assert not kept(layer0) & pruned
        pruned |= set(range(context)) - kept(layer0)
        assert kept(layer1) <= kept(layer0)  # the deeper layer only sees what layer 0 left
        assert int((layer1 != PAD).sum(-1).max()) < 10  # hence fewer than its budget of 10
        pruned |= set(range(context)) - kept(layer1)
    flags = states[0].memory["spatten.cascade"].pruned[0]
    assert {i for i in range(flags.shape[0]) if flags[i]} == pruned


def test_spatten_ranks_by_importance_accumulated_over_layers():
    """Importance = probabilities summed over heads, rows and layers; the top tokens by it are kept."""
    q, k, _, pq = make_qkv(0, batch=1, heads=4, kv_heads=2, context=21, prefill=20)
    sel = get_selector("spatten", budget=5, recent=1)
    layers = [LayerState(q, k, layer_idx=i, prefill_queries=pq) for i in range(2)]
    p0 = causal_probs(pq, k)
    p1 = torch.zeros_like(p0)
    p1[..., 13] = 1.0  # layer 1 attends only to token 13
    sel.observe(layers[0], p0)
    sel.observe(layers[1], p1)
    imp = layers[0].memory["spatten.cascade"].importance[0, :20]
    torch.testing.assert_close(imp, (p0 + p1).sum((1, 2))[0])
    idx = sel.select(layers[0])
    top = set(imp.argsort(descending=True)[:4].tolist())
    assert 13 in top and kept(idx[0, 0]) == kept(idx[0, 1]) == top | {20}


def test_spatten_new_sequence_gets_a_new_cascade():
    sel, states, _ = spatten_two_layers((6, 6))
    q, k, _, pq = make_qkv(1, batch=1, heads=4, kv_heads=2, context=24, prefill=20)
    fresh = [LayerState(q, k, layer_idx=i, prefill_queries=pq) for i in range(2)]
    for st in fresh:
        sel.select(st)
    assert fresh[0].memory["spatten.cascade"] is fresh[1].memory["spatten.cascade"]
    assert fresh[0].memory["spatten.cascade"] is not states[0].memory["spatten.cascade"]


def test_spatten_head_pruning_is_permanent_and_reads_the_newest_token():
    q, k, _, pq = make_qkv(2, batch=1, heads=4, kv_heads=2, context=21, prefill=20)
    sel = get_selector("spatten", budget=8, head_prune_fraction=0.5)
    st = LayerState(q, k, prefill_queries=pq)
    probs = torch.full((1, 4, 20, 20), 1 / 20)  # KV head 0 (query heads 0, 1): uniform, the least important
    probs[0, 2:] = torch.eye(20)  # KV head 1: one-hot
    sel.observe(st, probs)
    idx = sel.select(st)
    assert kept(idx[0, 0]) == {20} and len(kept(idx[0, 1])) == 8
    st.memory["spatten.head_importance"] = torch.tensor([[1e9, 0.0]])  # head 0 now looks important: still pruned
    k2 = torch.cat([k, torch.randn(1, 2, 1, 8)], 2)
    st.update(q, k2)
    idx = sel.select(st)
    assert kept(idx[0, 0]) == {21} and len(kept(idx[0, 1])) == 8


@pytest.mark.parametrize("name,params,match", [
    ("spatten", {"head_prune_fraction": 1.0}, "head_prune_fraction"), ("spatten", {"recent": -1}, "recent"),
    ("landmark", {"block_size": 0}, "block_size"), ("landmark", {"local_blocks": -2}, "local_blocks"),
    ("zero_tprune", {"damping": 0.0}, "damping"), ("fasa", {"chunk_size": 0}, "chunk_size"),
    ("fasa", {"frequency_fraction": 0.0}, "frequency_fraction"),
    ("fasa", {"max_calibration_rows": 0}, "max_calibration_rows"),
])
def test_bad_parameters(name, params, match):
    with pytest.raises(ValueError, match=match):
        get_selector(name, budget=4, **params)
