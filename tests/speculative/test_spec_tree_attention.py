"""TreeAttention routes the verification forward through the tree_attention op (reference path on the CPU) and
gives the logits of the LM's own masked forward, on tiny models and real DraftTrees."""
import pytest
import torch

from workbench.models.tiny import tiny_lm
from workbench.speculative.tree import DraftTree
from workbench.speculative.tree_attention import TreeAttention

PROMPT = [5, 17, 99, 3, 250, 42, 42, 7, 130, 64, 11]


def branching_tree() -> DraftTree:
    return DraftTree.from_paths([[4, 8, 15], [4, 16], [23, 42, 7, 1], [23, 42, 9], [108]])


def verification_logits(lm, tree: DraftTree, fn=None):
    """Logits of the (root, nodes...) forward after the cached prompt, as decode.py feeds it."""
    cache = lm.new_cache()
    lm.forward(PROMPT[:-1], cache=cache)
    prefix = cache.length
    args = dict(cache=cache, position_ids=tree.position_ids(prefix, include_root=True),
                attention_mask=tree.prefix_mask(prefix))
    ids = [PROMPT[-1]] + tree.tokens.tolist()
    if fn is None:
        return lm.forward(ids, **args).logits
    with lm.attention(fn):
        return lm.forward(ids, **args).logits


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
@pytest.mark.parametrize("tree", [branching_tree(), DraftTree.chain([9, 8, 7, 6]), DraftTree.empty()],
                         ids=["branching", "chain", "empty"])
def test_same_logits_as_the_lms_masked_forward(arch, tree):
    lm = tiny_lm(arch, seed=1)
    expected = verification_logits(lm, tree)
    fn = TreeAttention(tree, backend="reference")
    got = verification_logits(lm, tree, fn)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    if arch == "gemma3" and len(tree) + len(PROMPT) > 8:
        # the sliding-window layer (window 8) cannot see the whole prefix: the layer's own mask is used there
        assert fn.calls == {"tree_attention": 1, "sliding_window": 1}
    else:
        assert fn.calls == {"tree_attention": lm.num_layers}


def test_the_op_really_replaces_the_layers_attention(monkeypatch):
    """A wrong op result must change the logits: the test above is not comparing the model with itself."""
    import workbench.speculative.tree_attention as module

    lm, tree = tiny_lm("llama", seed=2), branching_tree()
    expected = verification_logits(lm, tree)
    monkeypatch.setattr(module, "tree_attention", lambda q, k, v, mask, scale, backend=None: torch.zeros_like(q))
    got = verification_logits(lm, tree, TreeAttention(tree))
    assert (got - expected).abs().max() > 1e-2


def test_tree_logits_equal_each_branch_fed_alone():
    """Independent truth: each root-to-leaf path fed as a plain sequence gives the tree's logits on that path."""
    lm, tree = tiny_lm("qwen2", seed=3), branching_tree()
    got = verification_logits(lm, tree, TreeAttention(tree))[0]
    for path in tree.paths():
        plain = lm.forward(PROMPT + [tree.token(i) for i in path]).logits[0, len(PROMPT) - 1:]
        rows = [0] + [i + 1 for i in path]
        torch.testing.assert_close(got[rows], plain, rtol=1e-4, atol=1e-4)


def test_a_forward_fed_another_tree_is_refused():
    lm = tiny_lm("llama", seed=0)
    fed, other = branching_tree(), DraftTree.chain(list(range(1, 11)))
    assert len(fed) == len(other)
    cache = lm.new_cache()
    lm.forward(PROMPT[:-1], cache=cache)
    with pytest.raises(ValueError, match="not the prefix \\+ tree mask"), lm.attention(TreeAttention(other)):
        lm.forward([PROMPT[-1]] + fed.tokens.tolist(), cache=cache,
                   position_ids=fed.position_ids(cache.length, include_root=True),
                   attention_mask=fed.prefix_mask(cache.length))


def test_other_calls_fall_back_to_the_models_attention():
    lm, tree = tiny_lm("llama", seed=0), branching_tree()
    fn = TreeAttention(tree)
    with lm.attention(fn):
        got = lm.forward(PROMPT[:7]).logits  # a prefill of another length than the tree's forward
    torch.testing.assert_close(got, lm.forward(PROMPT[:7]).logits, rtol=1e-5, atol=1e-5)
    assert fn.calls == {"other_call": lm.num_layers}


def test_bad_arguments():
    with pytest.raises(ValueError, match="tree must be a DraftTree"):
        TreeAttention([1, 2, 3])
    with pytest.raises(ValueError, match="include_root=False needs a tree"):
        TreeAttention(DraftTree.empty(), include_root=False)
