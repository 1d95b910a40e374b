"""logits_to_keep equals the full forward's rows; KVCache.expand equals a recomputed batch; KV traffic counts."""
from __future__ import annotations

import pytest
import torch

TOL = 1e-5


def reference(lm, ids, **kwargs):
    """The wrapper's forward keeping every position (the unchanged default)."""
    return lm.forward(ids, **kwargs).logits


@pytest.mark.parametrize("n", [1, 3, 12])
def test_last_n_positions_equal_full_rows(lm, ids_of, n):
    ids = [ids_of(12, seed=3), ids_of(12, seed=4)]
    full = reference(lm, ids)
    kept = lm.forward(ids, logits_to_keep=n).logits
    assert kept.shape == (2, n, lm.vocab_size)
    torch.testing.assert_close(kept, full[:, 12 - n:], atol=TOL, rtol=0)


def test_index_positions_equal_full_rows_in_order(lm, ids_of):
    ids = ids_of(12, seed=5)
    full = reference(lm, ids)
    for index in ([7, 2, 11], torch.tensor([0]), torch.tensor([3, 3])):
        kept = lm.forward(ids, logits_to_keep=index).logits
        want = full[:, torch.as_tensor(index)]
        torch.testing.assert_close(kept, want, atol=TOL, rtol=0)


def test_keep_with_cache_and_exit_layer(lm, ids_of):
    ids = ids_of(14, seed=6)
    cache = lm.new_cache()
    lm.forward(ids[:9], cache=cache)
    full = lm.forward(ids[9:], cache=cache.clone()).logits
    torch.testing.assert_close(lm.forward(ids[9:], cache=cache.clone(), logits_to_keep=2).logits, full[:, 3:],
                               atol=TOL, rtol=0)
    early = lm.forward(ids, exit_layer=1).logits
    torch.testing.assert_close(lm.forward(ids, exit_layer=1, logits_to_keep=[4, 13]).logits, early[:, [4, 13]],
                               atol=TOL, rtol=0)


def test_keep_gradients_flow(llama, ids_of):
    ids = ids_of(8, seed=7)
    e = llama.embed(ids).detach().requires_grad_()
    llama.forward(inputs_embeds=e).logits[0, -1, 5].backward()
    want = e.grad.clone()
    e.grad = None
    llama.forward(inputs_embeds=e, logits_to_keep=1).logits[0, 0, 5].backward()
    torch.testing.assert_close(e.grad, want, atol=1e-6, rtol=0)


def test_keep_rejects_bad_values_before_work(llama):
    llama.counters.reset()
    for bad, match in [(0, r"\[1, 3\]"), (4, r"\[1, 3\]"), (True, "bool"), ([3], r"\[0, 3\)"), ([-1], r"\[0, 3\)"),
                       ([], "non-empty"), (torch.tensor([[0]]), "1-D"), (torch.tensor([0.5]), "1-D"),
                       ("x", "logits_to_keep")]:
        with pytest.raises(ValueError, match=match):
            llama.forward([1, 2, 3], logits_to_keep=bad)
    assert llama.counters.forward_calls == 0


def test_expand_equals_recomputed_batch(lm, ids_of):
    prompt, tails = ids_of(10, seed=8), [ids_of(4, seed=9), ids_of(4, seed=10), ids_of(4, seed=11)]
    base = lm.new_cache()
    lm.forward(prompt, cache=base)
    before = [base.keys(i).clone() for i in range(lm.num_layers)]
    cache = base.expand(3)
    assert cache is not base and cache.batch_size == 3 and cache.length == 10 and base.batch_size == 1
    out = lm.forward(tails, cache=cache).logits
    want = reference(lm, [prompt + t for t in tails])[:, 10:]
    torch.testing.assert_close(out, want, atol=TOL, rtol=0)
    assert cache.length == 14 and base.length == 10
    for i in range(lm.num_layers):  # the shared batch-1 tensors are untouched
        torch.testing.assert_close(base.keys(i), before[i], atol=0, rtol=0)
    cropped = base.expand(2).crop(6)  # a shorter shared prefix, still without touching base
    out = lm.forward([tails[0], tails[1]], cache=cropped).logits
    torch.testing.assert_close(out, reference(lm, [prompt[:6] + tails[0], prompt[:6] + tails[1]])[:, 6:],
                               atol=TOL, rtol=0)
    assert base.length == 10


def test_expand_edge_cases(llama):
    empty = llama.new_cache().expand(4)
    assert empty.length == 0 and empty.batch_size is None
    cache = llama.new_cache()
    llama.forward([[1, 2], [3, 4]], cache=cache)
    assert cache.expand(2).batch_size == 2
    with pytest.raises(ValueError, match="batch-1"):
        cache.expand(3)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch must be an int >= 1"):
            cache.expand(bad)


def test_kv_traffic_by_hand(llama):
    b = llama.num_layers * 2 * llama.num_kv_heads * llama.head_dim * 4  # fp32
    assert llama.kv_bytes_per_token == b
    llama.kv_traffic.reset()
    cache = llama.new_cache()
    llama.forward([1, 2, 3, 4], cache=cache)  # writes 4, reads 4
    llama.forward([[5, 6]] * 3, cache=cache.expand(3))  # 3 rows: write 2 each, read 4 + 2 each
    assert llama.kv_traffic.written == (4 + 3 * 2) * b
    assert llama.kv_traffic.read == (4 + 3 * 6) * b
    snap = llama.kv_traffic.snapshot()
    llama.forward([7], cache=cache)
    assert (llama.kv_traffic - snap).to_dict() == {"written": b, "read": 5 * b}


@pytest.mark.slow
def test_real_model_kept_logits_equal_full_rows(real_lm):
    ids = real_lm.tokenizer.encode("The history of the printing press begins in")
    full = real_lm.forward(ids).logits
    kept = real_lm.forward(ids, logits_to_keep=[0, len(ids) - 1]).logits
    torch.testing.assert_close(kept, full[:, [0, len(ids) - 1]], atol=1e-4, rtol=0)
    torch.testing.assert_close(real_lm.forward(ids, logits_to_keep=3).logits, full[:, -3:], atol=1e-4, rtol=0)
