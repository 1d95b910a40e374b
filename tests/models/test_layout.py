"""input_major: same parameters (shapes, values, ties) and logits within fp32 tolerance inside; restored after."""
from __future__ import annotations

import pytest
import torch

from workbench.models.layout import input_major, is_input_major


def _linears(lm):
    return [m for m in lm.model.modules() if isinstance(m, torch.nn.Linear)]


def test_values_shapes_and_logits_unchanged_inside_and_restored(lm, ids_of):
    ids = ids_of(10, seed=1)
    before = lm.forward(ids).logits
    usual = {id(m): m.weight.data_ptr() for m in _linears(lm)}
    values = {id(m): m.weight.detach().clone() for m in _linears(lm)}
    with input_major(lm):
        for m in _linears(lm):
            assert is_input_major(m.weight) and torch.equal(m.weight, values[id(m)])
        torch.testing.assert_close(lm.forward(ids).logits, before, atol=1e-5, rtol=0)
    assert all(m.weight.data_ptr() == usual[id(m)] for m in _linears(lm))
    with input_major(lm):  # the copies are reused
        inside = {id(m): m.weight.data_ptr() for m in _linears(lm)}
    with input_major(lm):
        assert {id(m): m.weight.data_ptr() for m in _linears(lm)} == inside


def test_tied_head_stays_tied_and_restored_on_error(lm, ids_of):
    head, embed = lm.model.get_output_embeddings(), lm.model.get_input_embeddings()
    tied = head.weight is embed.weight
    want = lm.generate(ids_of(6, seed=2), max_new_tokens=6).new_ids
    with pytest.raises(RuntimeError, match="inside"):
        with input_major(lm):
            assert (head.weight is embed.weight) == tied
            assert lm.generate(ids_of(6, seed=2), max_new_tokens=6).new_ids == want
            raise RuntimeError("inside")
    assert head.weight.is_contiguous()


def test_replaced_weights_get_new_copies(llama, ids_of):
    with input_major(llama):
        pass
    layer = _linears(llama)[0]
    layer.weight.data = torch.zeros_like(layer.weight.data)
    with input_major(llama):
        assert float(layer.weight.abs().sum()) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="lm must be a workbench LM"):
        with input_major(torch.nn.Linear(2, 2)):
            pass
