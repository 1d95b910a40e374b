"""Verifier registry, input checks, and greedy verification against greedy autoregressive decoding."""
import pytest
import torch
from spec_toy import ToyModel, draft_topk_tree, target_rows

from workbench.speculative import (
    VERIFIERS,
    DraftTree,
    Verifier,
    get_verifier,
)
from workbench.speculative.verifiers.spectr import smallest_valid_rho

SAMPLING = ["speculative_sampling", "rsd", "spectr", "deterministic_tree"]


def uniform(rows: int, vocab: int) -> torch.Tensor:
    return torch.full((rows, vocab), 1.0 / vocab, dtype=torch.float64)


def test_registry_lists_every_verifier_and_refuses_unknown_names():
    assert set(VERIFIERS) == {"greedy", *SAMPLING}
    for name in VERIFIERS:
        verifier = get_verifier(name)
        assert isinstance(verifier, Verifier) and verifier.name == name
        assert get_verifier(verifier) is verifier
    with pytest.raises(ValueError, match="unknown verifier 'typical'.*deterministic_tree.*greedy.*rsd"):
        get_verifier("typical")


@pytest.mark.parametrize("name", ["speculative_sampling", "rsd", "spectr"])
def test_vocabulary_mismatch_names_both_sizes(name):
    tree = DraftTree.chain([1, 2])
    with pytest.raises(ValueError, match="draft distributions have V = 12 but target distributions have V = 10"):
        get_verifier(name).verify(tree, uniform(3, 10), uniform(2, 12))


@pytest.mark.parametrize("name", ["speculative_sampling", "rsd", "spectr"])
def test_draft_distributions_are_required(name):
    with pytest.raises(ValueError, match=f"verifier '{name}' needs the draft distributions"):
        get_verifier(name).verify(DraftTree.chain([1]), uniform(2, 4))


@pytest.mark.parametrize("name", sorted(VERIFIERS))
def test_bad_target_inputs_are_refused(name):
    verifier = get_verifier(name)
    tree = DraftTree.chain([1, 2], uniform(2, 4))
    with pytest.raises(ValueError, match=r"target_probs must have shape \[n \+ 1, V\] = \[3, V\]"):
        verifier.verify(tree, uniform(2, 4))
    with pytest.raises(ValueError, match="not logits"):
        verifier.verify(tree, torch.randn(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="row 1 sums to 2"):
        verifier.verify(tree, torch.tensor([[1.0, 0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, 0, 1.0]]))
    with pytest.raises(ValueError, match="outside the target vocabulary of size 2"):
        verifier.verify(DraftTree.chain([1, 3]), uniform(3, 2), uniform(2, 2))
    with pytest.raises(ValueError, match="tree must be a DraftTree"):
        verifier.verify([1, 2], uniform(3, 4))


def test_draft_token_with_zero_draft_probability_is_refused():
    q = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="node 0: token 2 has draft probability 0"):
        get_verifier("speculative_sampling").verify(DraftTree.chain([2]), uniform(2, 3), q)


def test_structural_requirements():
    branching = DraftTree([1, 2], [-1, -1], uniform(2, 4))
    with pytest.raises(ValueError, match="verifies a single chain, but node -1 has 2 children"):
        get_verifier("speculative_sampling").verify(branching, uniform(3, 4))
    duplicates = DraftTree([1, 1], [-1, -1], uniform(2, 4))
    with pytest.raises(ValueError, match="without replacement.*repeat a token"):
        get_verifier("rsd").verify(duplicates, uniform(3, 4))
    q = uniform(2, 4)
    q[1] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="siblings 0 and 1 have different draft distributions"):
        get_verifier("spectr").verify(DraftTree([1, 2], [-1, -1], q), uniform(3, 4))


def argmax_path(target: ToyModel, prefix: tuple[int, ...], steps: int) -> list[int]:
    out = []
    for _ in range(steps):
        out.append(int(torch.argmax(target.probs(prefix + tuple(out)))))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_greedy_emits_the_target_argmax_path(seed):
    """Greedy tree verification emits exactly what greedy decoding would, stopping where the tree leaves the
    argmax path; the draft model shares the target's argmax often, so trees are partly accepted."""
    target = ToyModel(16, seed, temperature=0)
    draft = ToyModel(16, 100 + seed, base=ToyModel(16, seed), noise=1.0)
    gen = torch.Generator().manual_seed(seed)
    verifier = get_verifier("greedy")
    lengths = set()
    for trial in range(20):
        prefix = tuple(torch.randint(0, 16, (2,), generator=gen).tolist())
        shape = [[[[]], []], [[]], []] if trial % 2 else [[[[]]]]
        tree = draft_topk_tree(draft, prefix, shape)
        result = verifier.verify(tree, target_rows(target, prefix, tree))
        expected = argmax_path(target, prefix, len(result.tokens))
        assert result.tokens == expected
        if result.accepted_nodes:
            assert result.accepted_nodes == tree.path(result.accepted_nodes[-1])
        assert [tree.token(i) for i in result.accepted_nodes] == result.accepted_tokens
        # the first token not accepted is the argmax, and no child of the last accepted node carries it
        last = result.accepted_nodes[-1] if result.accepted_nodes else -1
        assert all(tree.token(c) != result.bonus_token for c in tree.children(last))
        lengths.add(result.num_accepted)
        # a sampling verifier at temperature 0 (one-hot target) is deterministic and agrees with greedy
        outcomes = get_verifier("deterministic_tree").exact_outcomes(tree, target_rows(target, prefix, tree))
        assert len(outcomes) == 1 and outcomes[0][0] == 1.0 and outcomes[0][1].tokens == result.tokens
    assert len(lengths) > 1  # the trees were accepted to different depths


def test_verify_result_values():
    tree = DraftTree.chain([3, 1])
    target = torch.zeros(3, 4, dtype=torch.float64)
    target[0, 3] = target[1, 1] = target[2, 0] = 1.0
    result = get_verifier("greedy").verify(tree, target)
    assert result.accepted_nodes == [0, 1] and result.tokens == [3, 1, 0] and result.num_accepted == 2
    assert result.to_dict() == {"accepted_nodes": [0, 1], "accepted_tokens": [3, 1], "bonus_token": 0}
    assert get_verifier("greedy").verify(DraftTree.empty(), target[:1]).tokens == [3]


def rho_reference(p: torch.Tensor, q: torch.Tensor, k: int) -> float:
    """Plain bisection on the definition (gap increases with rho)."""
    def gap(rho: float) -> float:
        beta = float(torch.minimum(q, p / rho).sum())
        return rho * beta - (1 - (1 - beta) ** k)
    if gap(1.0) >= 0:
        return 1.0
    lo, hi = 1.0, float(k)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if gap(mid) >= 0 else (mid, hi)
    return hi


def test_spectr_rho_is_the_smallest_valid_one():
    gen = torch.Generator().manual_seed(0)
    for trial in range(200):
        vocab = int(torch.randint(2, 40, (1,), generator=gen))
        p = torch.softmax(torch.randn(vocab, generator=gen, dtype=torch.float64) * 2, 0)
        q = torch.softmax(torch.randn(vocab, generator=gen, dtype=torch.float64) * 2, 0)
        if trial % 3 == 0:
            p = torch.where(torch.rand(vocab, generator=gen) < 0.3, 0.0, p)
            p = p / p.sum() if p.sum() > 0 else torch.full_like(p, 1 / vocab)
        k = int(torch.randint(1, 6, (1,), generator=gen))
        rho = smallest_valid_rho(p, q, k)
        assert rho == pytest.approx(rho_reference(p, q, k), abs=1e-12)
        beta = float(torch.minimum(q, p / rho).sum())
        assert rho * beta - (1 - (1 - beta) ** k) >= -1e-15 and 1.0 <= rho <= k


@pytest.mark.parametrize("name", SAMPLING)
def test_seeded_verification_is_reproducible(name):
    target, draft = ToyModel(12, 0), ToyModel(12, 1, base=ToyModel(12, 0))
    prefix = (1, 2)
    tree = draft_topk_tree(draft, prefix, [[[]], [[]]] if name != "speculative_sampling" else [[[]]])
    q = torch.stack([draft.probs(prefix + tuple(tree.token(j) for j in tree.path(i))[:-1]) for i in range(len(tree))])
    runs = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(11)
        runs.append([get_verifier(name).verify(tree, target_rows(target, prefix, tree), q, gen).tokens
                     for _ in range(30)])
    assert runs[0] == runs[1] and len({tuple(r) for r in runs[0]}) > 1


@pytest.mark.parametrize("name", ["speculative_sampling", "rsd", "spectr"])
def test_sampling_verifiers_accept_an_empty_tree_without_draft_probs(name):
    # speculative_generate drafts nothing on the step that makes the last allowed token
    target = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    outcomes = get_verifier(name).exact_outcomes(DraftTree.empty(), target)
    assert sorted((r.bonus_token, p) for p, r in outcomes) == [(0, 0.25), (1, 0.75)]
