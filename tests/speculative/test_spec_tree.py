import pytest
import torch

from workbench.speculative import DraftTree


def ancestors_or_self(parents: list[int], i: int) -> set[int]:
    out = set()
    while i >= 0:
        out.add(i)
        i = parents[i]
    return out


def random_parents(n: int, gen: torch.Generator) -> list[int]:
    return [int(torch.randint(-1, i, (1,), generator=gen)) for i in range(n)]


def test_chain_structure():
    tree = DraftTree.chain([5, 7, 9])
    assert tree.parents.tolist() == [-1, 0, 1]
    assert tree.depth.tolist() == [1, 2, 3]
    assert tree.max_depth == 3
    assert tree.paths() == [[0, 1, 2]] and tree.token_paths() == [[5, 7, 9]]
    assert tree.children() == [0] and tree.children(2) == []
    assert torch.equal(tree.attention_mask(), torch.tril(torch.ones(3, 3, dtype=torch.bool)))
    assert tree.position_ids(10).tolist() == [11, 12, 13]
    assert tree.position_ids(10, include_root=True).tolist() == [10, 11, 12, 13]


def test_trie_from_paths_shares_prefixes_and_keeps_order():
    tree = DraftTree.from_paths([[1, 2, 3], [1, 4], [5], [1, 2, 6]])
    assert tree.tokens.tolist() == [1, 2, 3, 4, 5, 6]
    assert tree.parents.tolist() == [-1, 0, 1, 0, -1, 1]
    assert tree.children(-1) == [0, 4] and tree.children(0) == [1, 3] and tree.children(1) == [2, 5]
    assert tree.token_paths() == [[1, 2, 3], [1, 4], [5], [1, 2, 6]]
    assert tree.depth.tolist() == [1, 2, 3, 2, 1, 3]
    assert tree.leaves == [2, 3, 4, 5]


def test_from_paths_without_merging_keeps_duplicates():
    tree = DraftTree.from_paths([[1, 2], [1, 2], [3]], merge=False)
    assert tree.tokens.tolist() == [1, 2, 1, 2, 3]
    assert tree.parents.tolist() == [-1, 0, -1, 2, -1]


@pytest.mark.parametrize("seed", range(5))
def test_attention_mask_is_ancestor_or_self(seed):
    gen = torch.Generator().manual_seed(seed)
    n = 12
    parents = random_parents(n, gen)
    tree = DraftTree(list(range(n)), parents)
    mask = tree.attention_mask()
    for i in range(n):
        expected = ancestors_or_self(parents, i)
        assert {j for j in range(n) if mask[i, j]} == expected
        assert tree.depth[i] == len(expected)
        assert tree.path(i) == sorted(expected)  # parents precede children, so ancestors sort by index
    with_root = tree.attention_mask(include_root=True)
    assert with_root[:, 0].all() and torch.equal(with_root[1:, 1:], mask) and not with_root[0, 1:].any()
    full = tree.prefix_mask(4)
    assert full.shape == (n + 1, 4 + n + 1) and full[:, :4].all() and torch.equal(full[:, 4:], with_root)
    positions = tree.position_ids(7)
    assert positions.tolist() == [7 + len(ancestors_or_self(parents, i)) for i in range(n)]


def test_paths_cover_every_leaf_once():
    tree = DraftTree([1, 2, 3, 4, 5, 6], [-1, 0, 0, -1, 3, 4])
    assert tree.paths() == [[0, 1], [0, 2], [3, 4, 5]]
    assert tree.path(-1) == []


def test_empty_tree():
    tree = DraftTree.empty()
    assert len(tree) == 0 and tree.max_depth == 0 and tree.paths() == [] and tree.children() == []
    assert tree.attention_mask().shape == (0, 0)
    assert tree.attention_mask(include_root=True).tolist() == [[True]]
    assert tree.position_ids(3, include_root=True).tolist() == [3]


def test_tensor_inputs_and_to_dict():
    tree = DraftTree(torch.tensor([4, 5]), torch.tensor([-1, 0]), torch.full((2, 8), 1 / 8))
    assert tree.to_dict() == {"tokens": [4, 5], "parents": [-1, 0], "depth": [1, 2], "has_draft_probs": True}
    assert "DraftTree(n=2" in repr(tree)


@pytest.mark.parametrize("tokens, parents, match", [
    ([1, 2], [-1], "same length"),
    ([1, 2], [1, -1], r"parents\[0\] = 1"),
    ([1, 2, 3], [-1, 2, 0], r"parents\[1\] = 2.*before their children"),
    ([1, 2], [-1, -2], r"parents\[1\] = -2"),
    ([1, -3], [-1, 0], r"tokens\[1\] must be a token id >= 0"),
    ([1, 2.0], [-1, 0], r"tokens\[1\] must be an int"),
    ([1, True], [-1, 0], r"tokens\[1\] must be an int"),
    (torch.tensor([1.0, 2.0]), [-1, 0], "must hold integers"),
    (torch.tensor([[1, 2]]), [-1, 0], "one-dimensional"),
    (3, [-1], "sequence of ints"),
])
def test_invalid_trees_are_refused(tokens, parents, match):
    with pytest.raises(ValueError, match=match):
        DraftTree(tokens, parents)


def test_invalid_draft_probs_are_refused():
    with pytest.raises(ValueError, match=r"shape \[n, V\] with n = 2"):
        DraftTree([1, 2], [-1, 0], torch.full((3, 8), 1 / 8))
    with pytest.raises(ValueError, match="outside the draft vocabulary of size 8"):
        DraftTree([1, 9], [-1, 0], torch.full((2, 8), 1 / 8))
    with pytest.raises(ValueError, match="not logits"):
        DraftTree([1, 2], [-1, 0], torch.randn(2, 8) - 5)
    with pytest.raises(ValueError, match="floating-point"):
        DraftTree([1, 2], [-1, 0], torch.ones(2, 8, dtype=torch.long))


def test_bad_node_and_position_arguments():
    tree = DraftTree.chain([1, 2])
    with pytest.raises(ValueError, match="node must be -1"):
        tree.children(5)
    with pytest.raises(ValueError, match="root_position"):
        tree.position_ids(-1)
    with pytest.raises(ValueError, match="prefix_len"):
        tree.prefix_mask(-2)
