"""Token Recycling: the adjacency matrix refreshed from verification logits, BFS over the template, greedy output
identical to LM.generate."""
import pytest
import torch

from workbench.models import tiny_lm
from workbench.speculative import (
    DraftTree,
    SamplingConfig,
    VerifyResult,
    speculative_generate,
)
from workbench.speculative.drafters import TokenRecyclingDrafter, get_drafter
from workbench.speculative.drafters.token_recycling import (
    DEFAULT_TEMPLATE,
    check_template,
)

ARCHS = ["llama", "qwen2", "gemma3"]


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("llama", seed=0)


def test_matrix_rows_come_from_the_verified_positions(lm):
    drafter = TokenRecyclingDrafter(k=3, template=[(0,), (1,), (2,), (0, 0)])
    drafter.begin(lm, [1, 2, 9], SamplingConfig(0.0))
    assert drafter.matrix.shape == (257, 3) and bool((drafter.matrix == -1).all())
    assert len(drafter.propose([1, 2, 9], 8)) == 0  # an empty matrix drafts nothing
    tree = DraftTree([4, 5, 4], [-1, -1, 1])  # token 4 twice: the later row (node 2) wins
    logits = torch.zeros(4, 257)
    hand = {0: [10, 11, 12], 1: [20, 21, 22], 2: [30, 31, 32], 3: [40, 41, 42]}  # row -> top-3 in order
    for row, ids in hand.items():
        logits[row, ids] = torch.tensor([3.0, 2.0, 1.0])
    drafter.update(tree, VerifyResult([], [], 10), logits)
    assert drafter.matrix[9].tolist() == [10, 11, 12]  # the root (last context token) from row 0
    assert drafter.matrix[5].tolist() == [30, 31, 32]
    assert drafter.matrix[4].tolist() == [40, 41, 42]
    others = [t for t in range(257) if t not in (4, 5, 9)]
    assert bool((drafter.matrix[others] == -1).all())


def test_bfs_over_the_template(lm):
    drafter = TokenRecyclingDrafter(k=2, template=[(0,), (1,), (0, 0), (0, 1), (1, 0), (0, 0, 0)])
    drafter.begin(lm, [7], SamplingConfig(0.0))
    drafter.matrix[7] = torch.tensor([1, 2])
    drafter.matrix[1] = torch.tensor([3, 4])
    drafter.matrix[3] = torch.tensor([5, 6])  # token 2 has no row: node (1, 0) is dropped
    tree = drafter.propose([0, 7], 10)
    assert tree.token_paths() == [[2], [1, 4], [1, 3, 5]]  # leaves in node order
    assert tree.tokens.tolist() == [1, 2, 3, 4, 5] and tree.parents.tolist() == [-1, -1, 0, 0, 2]
    assert drafter.propose([0, 7], 3).tokens.tolist() == [1, 2, 3]  # the budget cuts breadth-first
    drafter.matrix[2] = torch.tensor([8, 9])
    assert drafter.propose([0, 7], 10).token_paths() == [[1, 4], [2, 8], [1, 3, 5]]


def test_matrix_persists_across_generations_unless_reset(lm):
    kept = TokenRecyclingDrafter()
    speculative_generate(lm, [1, 2, 3], kept, max_new_tokens=6)
    filled = int((kept.matrix[:, 0] >= 0).sum())
    assert filled > 0
    kept.begin(lm, [1], SamplingConfig(0.0))
    assert int((kept.matrix[:, 0] >= 0).sum()) == filled
    fresh = TokenRecyclingDrafter(reset_each_generation=True)
    speculative_generate(lm, [1, 2, 3], fresh, max_new_tokens=6)
    fresh.begin(lm, [1], SamplingConfig(0.0))
    assert bool((fresh.matrix == -1).all())


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_autoregressive(arch):
    target = tiny_lm(arch, seed=0)
    prompt = list(b"the cat sat on the mat, the cat")
    ref = target.generate(prompt, max_new_tokens=40)
    drafter = TokenRecyclingDrafter()
    spec = speculative_generate(target, prompt, drafter, max_new_tokens=40, budget=16)
    assert spec.new_ids == ref.new_ids and spec.stop_reason == ref.stop_reason and spec.text == ref.text
    assert spec.tau > 1.05  # recycled successors get accepted
    again = speculative_generate(target, prompt, drafter, max_new_tokens=40, budget=16)  # warm matrix
    assert again.new_ids == ref.new_ids and again.tau > spec.tau


def test_sampling_with_deterministic_tree_is_reproducible(lm):
    runs = [speculative_generate(lm, [1, 2, 3, 1, 2], TokenRecyclingDrafter(), max_new_tokens=20, temperature=0.7,
                                 seed=11, budget=8) for _ in range(2)]
    assert runs[0].verifier == "deterministic_tree" and runs[0].new_ids == runs[1].new_ids


def test_bad_input(lm):
    assert check_template(DEFAULT_TEMPLATE, 8) == DEFAULT_TEMPLATE and len(DEFAULT_TEMPLATE) == 23
    with pytest.raises(ValueError, match=r"template\[1\] = \(0, 0\): its parent \(0,\) must be listed before"):
        TokenRecyclingDrafter(template=[(1,), (0, 0)])
    with pytest.raises(ValueError, match=r"ranks must be ints in \[0, k\) = \[0, 2\)"):
        TokenRecyclingDrafter(k=2, template=[(2,)])
    with pytest.raises(ValueError, match="listed twice"):
        TokenRecyclingDrafter(template=[(0,), (0,)])
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        TokenRecyclingDrafter(k=0)
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        speculative_generate(lm, [1, 2], "token_recycling", budget=0)
    drafter = get_drafter("token_recycling", k=4, template=[(0,), (3,)])
    drafter.begin(lm, [1], SamplingConfig(0.0))
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        drafter.propose([1], 0)
