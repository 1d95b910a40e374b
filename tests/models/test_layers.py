"""Hidden states, early exit (logit lens), gradients through input embeddings."""
from __future__ import annotations

import pytest
import torch

TOL = 1e-5


def manual_head(lm, hidden):
    """Final norm then LM head then the final softcap, written out from the model's modules."""
    base = lm.model.model
    logits = base.norm(hidden) @ lm.model.lm_head.weight.T
    cap = getattr(lm.model.config, "final_logit_softcapping", None)
    return logits if cap is None else cap * torch.tanh(logits / cap)


def test_hidden_states_match_transformers(lm, ids_of):
    ids = ids_of(7, seed=30)
    out = lm.forward(ids, output_hidden_states=True)
    assert len(out.hidden_states) == lm.num_layers + 1
    with torch.no_grad():
        hf = lm.model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    torch.testing.assert_close(out.hidden_states[0], lm.embed(ids).detach(), atol=0, rtol=0)
    for k in range(lm.num_layers):  # HF's last entry is after the final norm; ours is before it
        torch.testing.assert_close(out.hidden_states[k], hf[k], atol=TOL, rtol=0)
    torch.testing.assert_close(lm.model.model.norm(out.hidden_states[-1]), hf[-1], atol=TOL, rtol=0)


def test_early_exit(lm, ids_of):
    ids = ids_of(9, seed=31)
    cache = lm.new_cache()
    normal = lm.forward(ids[:5], cache=cache.clone())
    last = lm.forward(ids[:5], cache=cache.clone(), exit_layer=lm.num_layers)
    torch.testing.assert_close(last.logits, normal.logits, atol=TOL, rtol=0)
    out = lm.forward(ids[:5], cache=cache, output_hidden_states=True)
    for k in range(lm.num_layers + 1):
        early = lm.forward(ids[5:], cache=out.cache.clone(), exit_layer=k, output_hidden_states=True)
        torch.testing.assert_close(early.logits, manual_head(lm, early.hidden_states[k]), atol=TOL, rtol=0)
    # the cache stays whole after an early exit: a later full forward is unaffected
    c1, c2 = out.cache.clone(), out.cache.clone()
    lm.forward(ids[5:7], cache=c1, exit_layer=1)
    lm.forward(ids[5:7], cache=c2)
    torch.testing.assert_close(lm.forward(ids[7:], cache=c1).logits, lm.forward(ids[7:], cache=c2).logits,
                               atol=TOL, rtol=0)


def test_early_exit_layers_differ(llama, ids_of):
    ids = ids_of(5, seed=32)
    layer1 = llama.forward(ids, exit_layer=1).logits
    assert (layer1 - llama.forward(ids).logits).abs().max() > 1e-3
    for bad in (-1, 3, 1.0, True):
        with pytest.raises(ValueError, match=r"exit_layer must be None or an int in \[0, 2\]"):
            llama.forward(ids, exit_layer=bad)


def test_input_embedding_gradient_matches_finite_differences(lm, ids_of):
    """Central differences in float64 with one Richardson step (error O(h^4)). The models' RMSNorms compute in
    float32 whatever the dtype, so h is 1e-2 rather than tiny (float32 rounding would dominate)."""
    lm.model.double()
    ids = ids_of(6, seed=33)
    target = 65
    embeds = lm.embed(ids).detach().requires_grad_(True)

    def loss_of(e):
        return -torch.log_softmax(lm.forward(inputs_embeds=e).logits[0, -1], -1)[target]

    loss = loss_of(embeds)
    assert loss.requires_grad  # autograd was on because the embeddings require grad
    loss.backward()
    grad = embeds.grad
    assert torch.isfinite(grad).all() and grad.abs().max() > 0

    def central(pos, dim, h):
        bump = torch.zeros_like(embeds)
        bump[0, pos, dim] = h
        with torch.no_grad():
            return ((loss_of(embeds + bump) - loss_of(embeds - bump)) / (2 * h)).item()

    h = 1e-2
    for pos, dim in [(0, 3), (2, 17), (5, 30)]:
        numeric = (4 * central(pos, dim, h / 2) - central(pos, dim, h)) / 3
        assert abs(numeric - grad[0, pos, dim].item()) < 5e-4 * max(1.0, abs(numeric))


def test_inputs_embeds_equal_ids_and_grad_flag(llama, ids_of):
    ids = ids_of(5, seed=34)
    by_ids = llama.forward(ids)
    assert not by_ids.logits.requires_grad  # no autograd by default
    by_embeds = llama.forward(inputs_embeds=llama.embed(ids).detach())
    torch.testing.assert_close(by_embeds.logits, by_ids.logits, atol=0, rtol=0)
    assert llama.forward(ids, grad=True).logits.requires_grad
    e = llama.embed(ids).detach().requires_grad_(True)
    assert not llama.forward(inputs_embeds=e, grad=False).logits.requires_grad
    with pytest.raises(ValueError, match="exactly one"):
        llama.forward(ids, inputs_embeds=e)
    with pytest.raises(ValueError, match=r"\[B, T, 32\]"):
        llama.forward(inputs_embeds=torch.zeros(1, 3, 7))
