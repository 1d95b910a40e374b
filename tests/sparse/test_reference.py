import math

import pytest
import torch
import torch.nn.functional as F
from conftest import make_qkv

from workbench.sparse import PAD, dense_attention, repeat_kv, sparse_attention
from workbench.sparse.reference import attention_probs


def sdpa(q, k, v, mask=None, **kw):
    """torch's SDPA on one decode query: q [B,H,D] -> [B,H,D]."""
    return F.scaled_dot_product_attention(q.unsqueeze(2), k, v, attn_mask=mask, **kw).squeeze(2)


def test_repeat_kv_maps_query_head_h_to_kv_head_h_over_group():
    k = torch.arange(3 * 2 * 1).float().view(1, 3, 2, 1)
    r = repeat_kv(k, 4)
    for h in range(12):
        assert torch.equal(r[0, h], k[0, h // 4])


@pytest.mark.parametrize("heads,kv_heads", [(6, 2), (9, 3), (4, 4), (4, 1)])
def test_select_everything_equals_dense_sdpa(heads, kv_heads):
    q, k, v, _ = make_qkv(1, heads=heads, kv_heads=kv_heads, context=23)
    everything = torch.arange(23).expand(2, kv_heads, 23)
    out = sparse_attention(q, k, v, everything)
    torch.testing.assert_close(out, sdpa(q, k, v, enable_gqa=True), atol=1e-6, rtol=1e-5)
    g = heads // kv_heads
    torch.testing.assert_close(out, sdpa(q, repeat_kv(k, g), repeat_kv(v, g)), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(dense_attention(q, k, v), sdpa(q, k, v, enable_gqa=True), atol=1e-6, rtol=1e-5)


def test_subset_equals_masked_sdpa_per_query_head():
    q, k, v, _ = make_qkv(2, heads=6, kv_heads=2, context=17)
    gen = torch.Generator().manual_seed(5)
    idx = torch.stack([torch.stack([torch.randperm(17, generator=gen)[:5].sort().values for _ in range(2)])
                       for _ in range(2)])
    mask = torch.zeros(2, 6, 1, 17, dtype=torch.bool)
    for b in range(2):
        for h in range(6):
            mask[b, h, 0, idx[b, h // 3]] = True  # query head h reads KV head h // group_size
    expected = sdpa(q, repeat_kv(k, 3), repeat_kv(v, 3), mask)
    torch.testing.assert_close(sparse_attention(q, k, v, idx), expected, atol=1e-6, rtol=1e-5)


def test_pad_entries_are_ignored_and_probs_scatter_back():
    q, k, v, _ = make_qkv(3, heads=4, kv_heads=2, context=9)
    idx = torch.tensor([[[1, 4, 8], [0, 2, PAD]]] * 2)
    out, probs = sparse_attention(q, k, v, idx, return_probs=True)
    # brute force for batch 0, query head 3 (KV head 1, positions {0, 2})
    logits = [float(q[0, 3] @ k[0, 1, s]) / math.sqrt(8) for s in (0, 2)]
    m = max(logits)
    w = [math.exp(x - m) for x in logits]
    p = [x / sum(w) for x in w]
    expected = p[0] * v[0, 1, 0] + p[1] * v[0, 1, 2]
    torch.testing.assert_close(out[0, 3], expected, atol=1e-6, rtol=1e-5)
    assert probs.shape == (2, 4, 9)
    torch.testing.assert_close(probs[0, 3, [0, 2]], torch.tensor(p), atol=1e-6, rtol=1e-5)
    assert probs[0, 3, [1, 3, 4, 5, 6, 7, 8]].abs().sum() == 0
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4))


def test_attention_probs_match_brute_force():
    q, k, _, _ = make_qkv(4, batch=1, heads=2, kv_heads=1, context=5, dim=3)
    p = attention_probs(q, k, scaling=0.7)
    for h in range(2):
        logits = [0.7 * float(q[0, h] @ k[0, 0, s]) for s in range(5)]
        z = sum(math.exp(x) for x in logits)
        assert p[0, h].tolist() == pytest.approx([math.exp(x) / z for x in logits], rel=1e-5)


def test_low_precision_inputs_keep_dtype():
    q, k, v, _ = make_qkv(5, dtype=torch.bfloat16)
    idx = torch.arange(40).expand(2, 2, 40)
    out = sparse_attention(q, k, v, idx)
    assert out.dtype == torch.bfloat16
    ref = sdpa(q.float(), k.float(), v.float(), enable_gqa=True)
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


def test_bad_inputs():
    q, k, v, _ = make_qkv(6, heads=6, kv_heads=4, context=5)
    with pytest.raises(ValueError, match=r"num_heads \(6\) must be a multiple of num_kv_heads \(4\)"):
        sparse_attention(q, k, v, torch.zeros(2, 4, 1, dtype=torch.long))
    q, k, v, _ = make_qkv(6, heads=4, kv_heads=2, context=5)
    with pytest.raises(ValueError, match=r"positions in \[0, 5\)"):
        sparse_attention(q, k, v, torch.tensor([[[0, 5]] * 2] * 2))
    with pytest.raises(ValueError, match="at least one position"):
        sparse_attention(q, k, v, torch.full((2, 2, 2), PAD))
    with pytest.raises(ValueError, match="indices must be"):
        sparse_attention(q, k, v, torch.zeros(2, 4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="query must be"):
        sparse_attention(q[0], k, v, torch.zeros(2, 2, 1, dtype=torch.long))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_the_kernel_reference_on_policy_selections(dtype):
    """Two independent references (this one, workbench.kernels') agree on real selections, PAD rows included."""
    from workbench.kernels import sparse_decode_attention
    from workbench.sparse import Budget, LayerState, get_selector
    from workbench.sparse.ranking import to_lengths

    q, k, v, _ = make_qkv(7, heads=6, kv_heads=2, context=61, dim=16, dtype=dtype)
    for name, budget in [("quest", 27), ("oracle", Budget(heads=(5, 40))), ("streaming_llm", 61)]:
        idx = get_selector(name, budget=budget).select(LayerState(q, k))
        flat, lengths = to_lengths(idx)
        ours = sparse_attention(q, k, v, idx)
        theirs = sparse_decode_attention(q, k, v, flat, lengths, backend="reference")
        tol = 1e-5 if dtype == torch.float32 else 1e-2
        torch.testing.assert_close(ours.float(), theirs.float(), atol=tol, rtol=tol)
