"""Raw attention and attention rollout on a tiny llama whose attention is uniform by construction.

With query and key projections set to zero every attention score is 0, so every head of every layer attends
uniformly to the causal prefix: the query at position p gives 1 / (p + 1) to each position <= p.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.attribution import Contrastive, attribute
from workbench.attribution.methods.rollout import rollout
from workbench.models.tiny import tiny_lm


@pytest.fixture(scope="module")
def uniform():
    lm = tiny_lm("llama", seed=0)
    with torch.no_grad():
        for layer in lm.model.model.layers:
            layer.self_attn.q_proj.weight.zero_()
            layer.self_attn.k_proj.weight.zero_()
    return lm


def test_raw_attention_is_uniform(uniform):
    prompt, target = "abcd", "xyz"
    a = attribute(uniform, prompt, target, method="attention", progress=False)
    # target token j is predicted at position 3 + j, which gives 1 / (4 + j) to each of the 4 prompt tokens
    want = np.array([[1 / (4 + j)] * 4 for j in range(3)])
    np.testing.assert_allclose(a.matrix, want, rtol=1e-6)
    per = a.extras["per_layer_head"]
    assert per.shape == (uniform.num_layers, uniform.num_heads, 3, 4)
    np.testing.assert_allclose(per, np.broadcast_to(want, per.shape), rtol=1e-6)


def test_attention_layer_and_head_selection(llama):
    a = attribute(llama, "hello", " you", method="attention", progress=False)
    per = a.extras["per_layer_head"]
    np.testing.assert_allclose(a.matrix, per.mean((0, 1)), rtol=1e-12)
    b = attribute(llama, "hello", " you", method="attention", layer=-1, head=2, progress=False)
    np.testing.assert_allclose(b.matrix, per[-1, 2], rtol=1e-12)
    c = attribute(llama, "hello", " you", method="attention", layer=0, progress=False)
    np.testing.assert_allclose(c.matrix, per[0].mean(0), rtol=1e-12)


def test_rollout_hand_computed(uniform):
    # 2 tokens, A = [[1, 0], [1/2, 1/2]] in both layers; A' = A/2 + I/2 = [[1, 0], [1/4, 3/4]];
    # A'A' = [[1, 0], [1/4 + 3/16, 9/16]] = [[1, 0], [7/16, 9/16]]
    two = attribute(uniform, "ab", lambda logits, ids: logits[:, 0, 0], method="rollout", progress=False)
    np.testing.assert_allclose(two.matrix, [[7 / 16, 9 / 16]], rtol=1e-6)
    # 3 tokens: A' row 2 = [1/6, 1/6, 2/3]; row 2 of A'A' = [23/72, 17/72, 32/72]
    three = attribute(uniform, "abc", Contrastive("x", "y"), method="rollout", progress=False)
    np.testing.assert_allclose(three.matrix, [[23 / 72, 17 / 72, 32 / 72]], rtol=1e-6)


def test_rollout_matches_a_plain_matrix_product(llama):
    a = attribute(llama, "rollout!", " ok", method="rollout", head_fusion="max", residual=0.3, progress=False)
    att = attribute(llama, "rollout!", " ok", method="attention", progress=False)
    out = llama.forward(llama.tokenizer.encode("rollout! ok"), output_attentions=True)
    total = np.eye(11)
    for layer in out.attentions:
        fused = layer[0].max(0).values.double().numpy()
        step = 0.3 * np.eye(11) + 0.7 * fused
        total = (step / step.sum(1, keepdims=True)) @ total
    np.testing.assert_allclose(a.matrix, total[7:10, :8], rtol=1e-5, atol=1e-7)
    assert att.matrix.shape == a.matrix.shape == (3, 8)


def test_rollout_function_rows_sum_to_one():
    maps = torch.softmax(torch.randn(3, 2, 5, 5), -1).tril()
    maps = maps / maps.sum(-1, keepdim=True)
    flow = rollout(maps)
    np.testing.assert_allclose(flow.sum(-1).numpy(), np.ones(5), rtol=1e-12)
    assert torch.all(flow.triu(1) == 0)  # causal: nothing flows from later positions
