"""DySpec: best-first growth by path probability (hand-checked order), greedy output identical to LM.generate."""
import pytest
import torch

from workbench.models import tiny_lm
from workbench.speculative import SamplingConfig, speculative_generate
from workbench.speculative.drafters import DySpecDrafter, get_drafter
from workbench.speculative.drafters.dyspec import grow_tree

ARCHS = ["llama", "qwen2", "gemma3"]


def test_nodes_come_out_in_decreasing_path_probability():
    """Vocabulary {0, 1, 2}. Root: [.6, .3, .1]; after A = 0: [.9, .05, .05]; after A0 = (0, 0): [.6, .4, 0];
    after B = 1: [.2, .7, .1]. Values: A .6, A0 .54, A00 .324, B .3, A01 .216, B1 .21, ..."""
    t = lambda *p: torch.tensor(p, dtype=torch.float64)
    after = {0: t(.9, .05, .05), 1: t(.6, .4, 0), 3: t(.2, .7, .1)}  # by node index, see the order below
    calls = []

    def child_probs(node):
        calls.append(node)
        return after.get(node, t(1 / 3, 1 / 3, 1 / 3))

    grown = grow_tree(t(.6, .3, .1), child_probs, 6)
    assert grown.tokens == [0, 0, 0, 1, 1, 1]
    assert grown.parents == [-1, 0, 1, -1, 1, 3]
    assert grown.values == pytest.approx([.6, .54, .324, .3, .216, .21])
    # a node is expanded only once its value is the best left: A00 (.324) and A01 (.216) were, B1 never
    assert grown.expanded == calls == [0, 1, 2, 3, 4]
    assert grow_tree(t(.6, .3, .1), child_probs, 1).tokens == [0]
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        grow_tree(t(.6, .3, .1), child_probs, 0)


def test_brute_force_best_first_order_on_random_distributions():
    """Against a brute force: list every path up to depth 4 with its value, and the tree must be the `budget`
    best ones (a tree automatically, since values decrease along a path)."""
    gen = torch.Generator().manual_seed(0)
    vocab, budget = 4, 9
    table = {}

    def probs_after(path):
        if path not in table:
            table[path] = torch.softmax(torch.randn(vocab, generator=gen, dtype=torch.float64) * 2, -1)
        return table[path]

    paths = []
    grown_paths = []

    def child_probs(node):
        return probs_after(grown_paths[node])

    def add_node(token, parent):
        grown_paths.append((grown_paths[parent] if parent >= 0 else ()) + (token,))
        return len(grown_paths) - 1

    grown = grow_tree(probs_after(()), child_probs, budget, add_node)

    def walk(path, value):
        if len(path) == budget:
            return
        p = probs_after(path)
        for x in range(vocab):
            child = value * float(p[x])
            paths.append((child, path + (x,)))
            if child > 1e-4:  # deeper paths are worth less than this: never among the best `budget`
                walk(path + (x,), child)

    walk((), 1.0)
    best = sorted(paths, reverse=True)[:budget]
    assert sorted(grown.values, reverse=True) == pytest.approx([v for v, _ in best])
    assert set(grown_paths) == {p for _, p in best}


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_autoregressive(arch):
    target = tiny_lm(arch, seed=0)
    prompt = list(b"the cat sat on the mat, the cat")
    ref = target.generate(prompt, max_new_tokens=12)
    for draft in (tiny_lm(arch, seed=1), tiny_lm(arch, seed=0)):
        spec = speculative_generate(target, prompt, DySpecDrafter(draft=draft), max_new_tokens=12, budget=6)
        assert spec.new_ids == ref.new_ids and spec.stop_reason == ref.stop_reason
    assert spec.tau > 1.5  # the twin draft: its most probable paths hold the greedy continuation


def test_tree_matches_grow_tree_on_the_draft_model():
    target, draft = tiny_lm("llama", seed=0), tiny_lm("llama", seed=1)
    prompt = [5, 6, 7, 8]
    drafter = DySpecDrafter(draft=draft, draft_temperature=2.0)
    drafter.begin(target, prompt, SamplingConfig(0.0))
    tree = drafter.propose(prompt, 7)

    def probs(ids):
        return torch.softmax(draft.forward(ids).logits[0, -1].double() / 2.0, -1)

    paths = []

    def add_node(token, parent):
        paths.append((paths[parent] if parent >= 0 else []) + [token])
        return len(paths) - 1

    grown = grow_tree(probs(prompt), lambda node: probs(prompt + paths[node]), 7, add_node)
    assert tree.tokens.tolist() == grown.tokens and tree.parents.tolist() == grown.parents


def test_bad_input():
    draft = tiny_lm("llama", seed=1)
    with pytest.raises(ValueError, match="draft_temperature must be a number > 0"):
        DySpecDrafter(draft=draft, draft_temperature=0)
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        speculative_generate(draft, [1, 2], DySpecDrafter(draft=draft), budget=0)
    assert isinstance(get_drafter("dyspec", draft=draft), DySpecDrafter)
