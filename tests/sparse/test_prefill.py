"""prefill.causal_probs_block: the fast prefill-probability block equals the straightforward causal_probs."""
import pytest
import torch
from conftest import make_qkv

from workbench.sparse.prefill import causal_probs, causal_probs_block


@pytest.mark.parametrize("lo,hi", [(0, 1), (0, 37), (5, 6), (10, 23), (30, 37)])
def test_causal_probs_block_is_causal_probs_without_the_unseen_columns(lo, hi):
    _, k, _, pq = make_qkv(3, batch=2, heads=6, kv_heads=2, context=37, prefill=37)
    full = causal_probs(pq, k, 0.3, slice(lo, hi))
    block = causal_probs_block(pq, k, 0.3, lo, hi)
    assert block.shape == (2, 6, hi - lo, hi)
    torch.testing.assert_close(block, full[..., :hi], atol=1e-6, rtol=1e-5)
    assert not full[..., hi:].any()  # what is left out is exactly the zeros
