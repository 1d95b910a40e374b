"""The key equivalences again on the real default model (SmolLM2-135M: 30 layers, 9 heads / 3 KV heads)."""
from __future__ import annotations

import pytest
import torch

from workbench.models import reference_attention, tree_mask

pytestmark = pytest.mark.slow

TOL = 1e-4  # 30 fp32 layers; observed differences are ~1e-5
PROMPT = "The quick brown fox jumps over the lazy dog. Then it"


@pytest.fixture(scope="module")
def ids(real_lm):
    return real_lm.tokenizer.encode(PROMPT)


def full_logits(lm, ids):
    with torch.no_grad():
        return lm.model(torch.tensor([ids]), use_cache=False).logits


def test_shape_facts(real_lm):
    assert (real_lm.num_layers, real_lm.num_heads, real_lm.num_kv_heads, real_lm.head_dim) == (30, 9, 3, 64)
    assert real_lm.vocab_size == 49152 and real_lm.max_context == 8192


def test_cached_forward_equals_full_forward(real_lm, ids):
    cache = real_lm.new_cache()
    parts = [real_lm.forward(ids[:5], cache=cache).logits, real_lm.forward(ids[5:9], cache=cache).logits]
    parts += [real_lm.forward([t], cache=cache).logits for t in ids[9:]]
    torch.testing.assert_close(torch.cat(parts, 1), full_logits(real_lm, ids), atol=TOL, rtol=0)


def test_crop_then_forward(real_lm, ids):
    cache = real_lm.new_cache()
    real_lm.forward(ids, cache=cache)
    cache.crop(6)
    tail = real_lm.tokenizer.encode(" cat")
    got = real_lm.forward(tail, cache=cache).logits
    torch.testing.assert_close(got, full_logits(real_lm, ids[:6] + tail)[:, 6:], atol=TOL, rtol=0)


def test_tree_forward_equals_branches(real_lm, ids):
    parents, nodes = [-1, 0, 1, 0, 3], real_lm.tokenizer.encode(" ran away and sat down")[:5]
    assert len(nodes) == 5
    cache = real_lm.new_cache()
    real_lm.forward(ids, cache=cache)
    mask, positions = tree_mask(parents, prefix=len(ids))
    out = real_lm.forward(nodes, cache=cache, position_ids=positions, attention_mask=mask).logits[0]
    for branch in ([0, 1, 2], [0, 3, 4]):
        want = full_logits(real_lm, ids + [nodes[i] for i in branch])[0, len(ids):]
        torch.testing.assert_close(out[branch], want, atol=TOL, rtol=0)


def test_early_exit(real_lm, ids):
    last = real_lm.forward(ids, exit_layer=real_lm.num_layers).logits
    torch.testing.assert_close(last, full_logits(real_lm, ids), atol=TOL, rtol=0)
    out = real_lm.forward(ids, exit_layer=12, output_hidden_states=True)
    manual = real_lm.model.model.norm(out.hidden_states[12]) @ real_lm.model.lm_head.weight.T
    torch.testing.assert_close(out.logits, manual, atol=TOL, rtol=0)


def test_override_equals_eager_and_sees_kv_heads(real_lm, ids):
    real_lm.model.set_attn_implementation("eager")
    try:
        eager = real_lm.forward(ids).logits
    finally:
        real_lm.model.set_attn_implementation("sdpa")
    shapes = set()

    def fn(query, key, value, *, layer_idx, scaling, attention_mask, module):
        shapes.add((layer_idx, key.shape[1], query.shape[1]))
        return reference_attention(query, key, value, scaling=scaling, attention_mask=attention_mask)

    with real_lm.attention(fn):
        got = real_lm.forward(ids).logits
    torch.testing.assert_close(got, eager, atol=TOL, rtol=0)
    assert shapes == {(i, 3, 9) for i in range(30)}


def test_gather_all_positions_is_a_no_op(real_lm, ids):
    cache = real_lm.new_cache()
    real_lm.forward(ids[:-1], cache=cache)
    n = len(ids) - 1
    cache.gather(torch.arange(n).expand(1, 3, n))
    got = real_lm.forward(ids[-1:], cache=cache).logits
    torch.testing.assert_close(got, full_logits(real_lm, ids)[:, -1:], atol=TOL, rtol=0)


def test_input_embedding_gradients(real_lm, ids):
    embeds = real_lm.embed(ids).detach().requires_grad_(True)
    logits = real_lm.forward(inputs_embeds=embeds).logits
    logits[0, -1].max().backward()
    assert torch.isfinite(embeds.grad).all() and embeds.grad.abs().sum() > 0


def test_greedy_generation_equals_argmax_decoding(real_lm, ids):
    g = real_lm.generate(ids, max_new_tokens=8)
    seq = list(ids)
    for _ in range(8):
        seq.append(int(full_logits(real_lm, seq)[0, -1].argmax()))
    assert g.new_ids[: len(g.new_ids)] == seq[len(ids): len(ids) + len(g.new_ids)]
    assert g.stop_reason in ("length", "eos")
