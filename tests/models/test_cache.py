"""KV cache: incremental forwards equal one full forward; crop, gather and clone behave as references say."""
from __future__ import annotations

import pytest
import torch

from workbench.models import reference_attention

TOL = 1e-5


def full_logits(lm, ids):
    """The HF model's own forward over the whole sequence, without any cache (the established reference)."""
    with torch.no_grad():
        return lm.model(torch.tensor([ids]), use_cache=False).logits


def test_cached_forward_equals_full_forward(lm, ids_of):
    ids = ids_of(20)
    reference = full_logits(lm, ids)
    cache = lm.new_cache()
    parts = [lm.forward(ids[:7], cache=cache).logits, lm.forward(ids[7:12], cache=cache).logits]
    parts += [lm.forward([t], cache=cache).logits for t in ids[12:]]
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(parts, dim=1), reference, atol=TOL, rtol=0)
    # and the wrapper's own full forward (through an empty cache) is the same
    torch.testing.assert_close(lm.forward(ids).logits, reference, atol=TOL, rtol=0)


def test_sliding_window_layer_is_really_local():
    """Gemma 3's tiny model has a window of 8 on layer 0: past 8 tokens the logits differ from a wide window."""
    from transformers import AutoModelForCausalLM

    from workbench.models import LM
    from workbench.models.tiny import tiny_config, tiny_lm

    lm = tiny_lm("gemma3")
    config = tiny_config("gemma3")
    config.sliding_window = 1000
    wide = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    wide.load_state_dict(lm.model.state_dict())
    wide_lm = LM(wide, lm.tokenizer)
    ids = list(range(65, 85))
    local, everything = lm.forward(ids).logits, wide_lm.forward(ids).logits
    torch.testing.assert_close(local[:, :8], everything[:, :8], atol=TOL, rtol=0)
    assert (local[:, 8:] - everything[:, 8:]).abs().max() > 1e-3


def test_crop_then_forward_equals_shorter_sequence(lm, ids_of):
    ids = ids_of(16, seed=1)
    cache = lm.new_cache()
    lm.forward(ids, cache=cache)
    assert cache.crop(9) is cache and cache.length == 9
    other = [5, 6, 7]
    out = lm.forward(other, cache=cache).logits
    torch.testing.assert_close(out, full_logits(lm, ids[:9] + other)[:, 9:], atol=TOL, rtol=0)
    assert cache.length == 12


def test_crop_bounds(llama):
    cache = llama.new_cache()
    llama.forward([1, 2, 3], cache=cache)
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        cache.crop(4)
    with pytest.raises(ValueError, match="n must be"):
        cache.crop(-1)
    cache.crop(0)
    assert cache.length == 0
    torch.testing.assert_close(llama.forward([7, 8], cache=cache).logits, full_logits(llama, [7, 8]), atol=TOL, rtol=0)
    batched = llama.new_cache()
    llama.forward([[1, 2], [3, 4]], cache=batched)
    batched.crop(0)  # an emptied cache takes any batch size
    torch.testing.assert_close(llama.forward([7, 8], cache=batched).logits, full_logits(llama, [7, 8]),
                               atol=TOL, rtol=0)
    assert batched.positions.tolist() == [[0, 1]]


def test_clone_is_independent(llama, ids_of):
    ids = ids_of(10, seed=2)
    cache = llama.new_cache()
    llama.forward(ids, cache=cache)
    copy = cache.clone()
    llama.forward([1, 2], cache=cache)
    assert (copy.length, cache.length) == (10, 12)
    out = llama.forward([3], cache=copy).logits
    torch.testing.assert_close(out, full_logits(llama, ids + [3])[:, -1:], atol=TOL, rtol=0)


def test_gather_all_positions_changes_nothing(lm, ids_of):
    ids = ids_of(12, seed=3)
    cache = lm.new_cache()
    lm.forward(ids[:-1], cache=cache)
    everything = torch.arange(11).expand(1, lm.num_kv_heads, 11)
    cache.gather(everything)
    assert cache.length == 11
    torch.testing.assert_close(lm.forward(ids[-1:], cache=cache).logits, full_logits(lm, ids)[:, -1:],
                               atol=TOL, rtol=0)


def masked_reference(kept: list[torch.Tensor], prefix: int):
    """Attention over the FULL cache in which each KV head sees only its kept prefix slots (+ the new tokens)."""

    def fn(query, key, value, *, layer_idx, scaling, attention_mask, module):
        batch, kv_heads, total, _ = key.shape
        allowed = torch.zeros(batch, kv_heads, 1, total, dtype=torch.bool)
        allowed[..., prefix:] = True
        allowed.scatter_(-1, kept[layer_idx].unsqueeze(2), True)
        per_head = allowed.repeat_interleave(query.shape[1] // kv_heads, dim=1)
        mask = torch.where(per_head, 0.0, torch.finfo(query.dtype).min) + attention_mask
        return reference_attention(query, key, value, scaling=scaling, attention_mask=mask, module=module)

    return fn


def test_gather_subset_per_head_equals_masked_attention(lm, ids_of):
    prefix = 6  # prefix + new tokens fit in Gemma 3's sliding window (8), so slots and positions agree
    ids = ids_of(prefix + 2, seed=4)
    g = torch.Generator().manual_seed(5)
    kept = [torch.stack([torch.randperm(prefix, generator=g)[:4].sort().values for _ in range(lm.num_kv_heads)])[None]
            for _ in range(lm.num_layers)]  # per layer [1, H_kv, 4], different for every head and layer
    full = lm.new_cache()
    lm.forward(ids[:prefix], cache=full)
    evicted = full.clone().gather(kept)
    assert evicted.length == 4
    for layer in range(lm.num_layers):
        expected = torch.gather(full.keys(layer), 2, kept[layer].unsqueeze(-1).expand(-1, -1, -1, lm.head_dim))
        torch.testing.assert_close(evicted.keys(layer), expected, atol=0, rtol=0)
    new = ids[prefix:]
    positions = [prefix, prefix + 1]  # after eviction the caller passes the true positions
    got = lm.forward(new, cache=evicted, position_ids=positions).logits
    with lm.attention(masked_reference(kept, prefix)):
        want = lm.forward(new, cache=full).logits
    torch.testing.assert_close(got, want, atol=TOL, rtol=0)
    # the eviction really mattered
    assert (got - full_logits(lm, ids)[:, prefix:]).abs().max() > 1e-3


def test_gather_same_slots_for_all_heads_beyond_the_window(lm, ids_of):
    """One shared set of kept slots: the cache still knows each slot's position, so Gemma 3's sliding window is
    measured in positions, exactly as over the full cache with the evicted slots masked out."""
    prefix = 12  # longer than Gemma 3's window of 8
    ids = ids_of(prefix + 3, seed=12)
    keep = torch.tensor([0, 1, 2, 5, 8, 9, 10, 11])
    full = lm.new_cache()
    lm.forward(ids[:prefix], cache=full)
    evicted = full.clone().gather(keep)
    assert evicted.positions.tolist() == [keep.tolist()]
    got = lm.forward(ids[prefix:], cache=evicted, position_ids=[12, 13, 14]).logits
    assert evicted.positions.tolist() == [keep.tolist() + [12, 13, 14]]
    per_head = [keep.expand(1, lm.num_kv_heads, -1)] * lm.num_layers
    with lm.attention(masked_reference(per_head, prefix)):
        want = lm.forward(ids[prefix:], cache=full).logits
    torch.testing.assert_close(got, want, atol=TOL, rtol=0)


def test_positions_are_tracked(llama):
    cache = llama.new_cache()
    llama.forward([1, 2, 3], cache=cache)
    llama.forward([4, 5], cache=cache, position_ids=[7, 9])
    assert cache.positions.tolist() == [[0, 1, 2, 7, 9]]
    cache.crop(4)
    assert cache.clone().positions.tolist() == [[0, 1, 2, 7]]
    cache.gather(torch.tensor([[[0, 1], [2, 3]]]))  # different slots per head: positions become unknown
    assert cache.positions is None


def test_gather_rejects_bad_indices(llama):
    cache = llama.new_cache()
    with pytest.raises(ValueError, match="empty"):
        cache.gather(torch.arange(2))
    llama.forward([1, 2, 3, 4], cache=cache)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        cache.gather(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="shape"):
        cache.gather(torch.zeros(1, 3, 2, dtype=torch.long))  # 3 heads, the model has 2 KV heads
    with pytest.raises(ValueError, match="same number"):
        cache.gather([torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long)])
    with pytest.raises(ValueError, match="integer"):
        cache.gather(torch.zeros(2))


def test_default_positions_continue_from_cache_length(llama):
    cache = llama.new_cache()
    llama.forward([1, 2, 3], cache=cache)
    a = llama.forward([4], cache=cache.clone()).logits
    b = llama.forward([4], cache=cache.clone(), position_ids=[3]).logits
    c = llama.forward([4], cache=cache.clone(), position_ids=[5]).logits
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert (a - c).abs().max() > 1e-4


def test_batched_forward_equals_rows(lm, ids_of):
    rows = [ids_of(6, seed=7), ids_of(6, seed=8)]
    cache = lm.new_cache()
    out = lm.forward(rows, cache=cache).logits
    step = lm.forward([[1], [2]], cache=cache).logits
    assert cache.batch_size == 2
    for b, row in enumerate(rows):
        torch.testing.assert_close(out[b:b + 1], full_logits(lm, row), atol=TOL, rtol=0)
        torch.testing.assert_close(step[b:b + 1], full_logits(lm, row + [b + 1])[:, -1:], atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="batch size"):
        lm.forward([3], cache=cache)


def test_counters(llama):
    llama.counters.reset()
    cache = llama.new_cache()
    llama.forward([1, 2, 3], cache=cache)
    llama.forward([4], cache=cache)
    llama.forward([[1, 2], [3, 4]])
    assert (llama.counters.forward_calls, llama.counters.tokens_processed) == (3, 3 + 1 + 4)
    assert llama.counters.to_dict() == {"forward_calls": 3, "tokens_processed": 8}
    llama.counters.reset()
    assert llama.counters.forward_calls == 0 and llama.counters.tokens_processed == 0


def test_nbytes(llama):
    cache = llama.new_cache()
    assert cache.nbytes == 0 and cache.length == 0 and cache.batch_size is None
    llama.forward([1, 2, 3], cache=cache)
    assert cache.nbytes == 2 * llama.num_layers * llama.num_kv_heads * 3 * llama.head_dim * 4
