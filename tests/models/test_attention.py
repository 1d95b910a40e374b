"""The attention override and per-layer attentions."""
from __future__ import annotations

import pytest
import torch

from workbench.models import reference_attention

TOL = 1e-5


def eager_logits(lm, ids, cache=None):
    """Logits through transformers' own eager attention."""
    previous = lm.model.config._attn_implementation
    lm.model.set_attn_implementation("eager")
    try:
        return lm.forward(ids, cache=cache).logits
    finally:
        lm.model.set_attn_implementation(previous)


def test_override_with_plain_attention_equals_eager(lm, ids_of):
    ids = ids_of(14, seed=20)  # longer than Gemma 3's window: the override must get the sliding mask
    cache_a, cache_b = lm.new_cache(), lm.new_cache()
    want = [eager_logits(lm, ids[:10], cache_a), eager_logits(lm, ids[10:], cache_a)]
    with lm.attention(reference_attention):
        got = [lm.forward(ids[:10], cache=cache_b).logits, lm.forward(ids[10:], cache=cache_b).logits]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=TOL, rtol=0)
    assert lm.model.config._attn_implementation == "sdpa"  # restored


def test_override_sees_unrepeated_kv_heads_and_layer_indices(lm, ids_of):
    calls = []

    def spy(query, key, value, *, layer_idx, scaling, attention_mask, module):
        calls.append((layer_idx, tuple(query.shape), tuple(key.shape), tuple(value.shape),
                      None if attention_mask is None else tuple(attention_mask.shape), scaling))
        return reference_attention(query, key, value, scaling=scaling, attention_mask=attention_mask, module=module)

    cache = lm.new_cache()
    with lm.attention(spy):
        lm.forward(ids_of(5), cache=cache)
        lm.forward([1], cache=cache)
    h, kv, d = lm.num_heads, lm.num_kv_heads, lm.head_dim
    assert kv < h
    assert [c[0] for c in calls] == [0, 1, 0, 1]
    assert calls[0][1:5] == ((1, h, 5, d), (1, kv, 5, d), (1, kv, 5, d), (1, 1, 5, 5))
    assert calls[2][1:5] == ((1, h, 1, d), (1, kv, 6, d), (1, kv, 6, d), (1, 1, 1, 6))
    assert all(c[5] == lm.model.model.layers[0].self_attn.scaling for c in calls)


def test_override_changes_the_output_and_is_restored(llama, ids_of):
    ids = ids_of(6, seed=21)
    normal = llama.forward(ids).logits

    def uniform(query, key, value, *, layer_idx, scaling, attention_mask, module):
        weights = torch.softmax(attention_mask.float(), dim=-1)  # uniform over visible keys
        groups = query.shape[1] // key.shape[1]
        return torch.matmul(weights, value.repeat_interleave(groups, dim=1))

    with llama.attention(uniform):
        changed = llama.forward(ids).logits
    assert (changed - normal).abs().max() > 1e-3
    torch.testing.assert_close(llama.forward(ids).logits, normal, atol=0, rtol=0)


def test_nested_overrides_restore_the_outer_one(llama, ids_of):
    ids = ids_of(4, seed=22)
    seen = []

    def outer(q, k, v, **kw):
        seen.append("outer")
        return reference_attention(q, k, v, scaling=kw["scaling"], attention_mask=kw["attention_mask"])

    def inner(q, k, v, **kw):
        seen.append("inner")
        return reference_attention(q, k, v, scaling=kw["scaling"], attention_mask=kw["attention_mask"])

    with llama.attention(outer):
        with llama.attention(inner):
            llama.forward(ids)
        llama.forward(ids)
    assert seen == ["inner", "inner", "outer", "outer"]


def test_bad_override_output_is_reported(llama):
    with llama.attention(lambda q, k, v, **kw: q[:, :, :, :2]), pytest.raises(ValueError, match=r"\[B, H, T, D\]"):
        llama.forward([1, 2])
    with pytest.raises(ValueError, match="callable"), llama.attention("h2o"):
        pass


def test_output_attentions_are_the_softmax_probabilities(lm, ids_of):
    ids = ids_of(10, seed=23)
    out = lm.forward(ids, output_attentions=True)
    assert lm.model.config._attn_implementation == "sdpa"
    assert len(out.attentions) == lm.num_layers
    for layer, probs in enumerate(out.attentions):
        assert probs.shape == (1, lm.num_heads, 10, 10)
        torch.testing.assert_close(probs.sum(-1), torch.ones(1, lm.num_heads, 10), atol=1e-5, rtol=0)
        assert probs.triu(1).abs().max() == 0  # causal
    # the same probabilities as a reference attention over the same queries and keys
    captured = {}

    def capture(query, key, value, *, layer_idx, scaling, attention_mask, module):
        out, probs = reference_attention(query, key, value, scaling=scaling, attention_mask=attention_mask,
                                         module=module, return_weights=True)
        captured[layer_idx] = probs
        return out, probs

    with lm.attention(capture):
        again = lm.forward(ids, output_attentions=True)
    for layer in range(lm.num_layers):
        torch.testing.assert_close(out.attentions[layer], captured[layer], atol=1e-6, rtol=0)
        torch.testing.assert_close(again.attentions[layer], captured[layer], atol=0, rtol=0)
    torch.testing.assert_close(again.logits, out.logits, atol=TOL, rtol=0)
