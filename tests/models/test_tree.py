"""Custom attention masks: a token tree fed in one forward equals each branch fed on its own."""
from __future__ import annotations

import pytest
import torch

from workbench.models import causal_mask, tree_mask

TOL = 2e-5


def branch_logits(lm, tokens):
    with torch.no_grad():
        return lm.model(torch.tensor([tokens]), use_cache=False).logits[0]


# A tree of 5 nodes after the prefix: node 0 is shared; branch A = 0 -> 1 -> 2, branch B = 0 -> 3 -> 4.
PARENTS = [-1, 0, 1, 0, 3]
NODES = [11, 22, 33, 44, 55]
BRANCHES = [[0, 1, 2], [0, 3, 4]]


def test_tree_mask_helper_by_hand():
    mask, positions = tree_mask(PARENTS, prefix=2)
    visible = mask[0, 0] == 0
    expected = torch.tensor([
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0, 1, 0],
        [1, 1, 1, 0, 0, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(visible, expected)
    assert positions.tolist() == [[2, 3, 4, 3, 4]]
    with pytest.raises(ValueError, match="parents"):
        tree_mask([0], prefix=1)


@pytest.mark.parametrize("as_bool", [False, True])
def test_tree_forward_equals_branch_forwards(lm, ids_of, as_bool):
    prefix = ids_of(7, seed=9)  # deepest node at position 9: Gemma 3's window of 8 cuts the first key
    cache = lm.new_cache()
    lm.forward(prefix, cache=cache)
    mask, positions = tree_mask(PARENTS, prefix=len(prefix))
    if as_bool:
        mask = mask[0, 0] == 0  # boolean [T, S]
    out = lm.forward(NODES, cache=cache, position_ids=positions, attention_mask=mask)
    assert cache.length == len(prefix) + len(NODES)
    for branch in BRANCHES:
        want = branch_logits(lm, prefix + [NODES[i] for i in branch])[len(prefix):]
        torch.testing.assert_close(out.logits[0, branch], want, atol=TOL, rtol=0)


def test_tree_then_crop_to_accepted_branch_continues_correctly(llama, ids_of):
    """Speculative rollback: keep the accepted path (nodes 0, 3 of branch B) and continue from it."""
    prefix = ids_of(6, seed=10)
    cache = llama.new_cache()
    llama.forward(prefix, cache=cache)
    mask, positions = tree_mask(PARENTS, prefix=len(prefix))
    llama.forward(NODES, cache=cache, position_ids=positions, attention_mask=mask)
    # accepted slots: prefix + node 0 + node 3; node 3 sits at slot prefix+3, so gather slots then continue
    keep = torch.tensor(list(range(len(prefix) + 1)) + [len(prefix) + 3])
    cache.gather(keep)
    out = llama.forward([77], cache=cache).logits[0, -1]
    want = branch_logits(llama, prefix + [NODES[0], NODES[3], 77])[-1]
    torch.testing.assert_close(out, want, atol=TOL, rtol=0)


def test_explicit_causal_masks_equal_default(lm, ids_of):
    ids = ids_of(9, seed=11)
    cache = lm.new_cache()
    lm.forward(ids[:4], cache=cache)
    default = lm.forward(ids[4:], cache=cache.clone()).logits
    additive = causal_mask(5, 9)
    for mask in (additive, additive[0, 0] == 0, additive[0, 0]):
        got = lm.forward(ids[4:], cache=cache.clone(), attention_mask=mask).logits
        torch.testing.assert_close(got, default, atol=TOL, rtol=0)


def test_mask_shape_errors(llama):
    cache = llama.new_cache()
    llama.forward([1, 2, 3], cache=cache)
    with pytest.raises(ValueError, match=r"\[2, 5\]"):
        llama.forward([4, 5], cache=cache, attention_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        llama.forward([4, 5], cache=cache, attention_mask=torch.ones(2, 5, dtype=torch.long))
    assert cache.length == 3  # nothing ran
