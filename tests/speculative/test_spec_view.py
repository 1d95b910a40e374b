"""SpeculativeGeneration.view() on the tiny seeded LM: the draft tree of a step (root, drafted nodes, bonus token,
accepted path highlighted) checked against a drafter whose tree is known (the true continuation behind a wrong
sibling), the accepted-path-only form without a recorder, the timeline and summary, and bad input."""
import re

import pytest

from workbench.models import tiny_lm
from workbench.speculative import DraftTree, SpeculativeGeneration, speculative_generate
from workbench.speculative.drafters import Drafter
from workbench.speculative.recorder import DraftRecorder
from workbench.speculative.view import SpeculativeView
from workbench.views import Plot, Table, TreeView

PROMPT = list(b"the cat sat on the mat, the cat")


class KnownTreeDrafter(Drafter):
    """Step 0: a wrong first token, then the true next three tokens as a second branch; later steps: nothing."""

    name = "known_tree"

    def __init__(self, truth):
        self.truth, self.calls = truth, 0

    def propose(self, context_ids, budget):
        self.calls += 1
        if self.calls > 1:
            return DraftTree.empty()
        wrong = (self.truth[0] + 1) % 256
        return DraftTree([wrong, *self.truth[:3]], [-1, -1, 1, 2])


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("llama", seed=0)


@pytest.fixture(scope="module")
def truth(lm):
    new = lm.generate(PROMPT, max_new_tokens=8).new_ids
    assert len(new) == 8 and all(t < 256 for t in new[:4])  # bytes, no EOS: the test below relies on it
    return new


def text_of(token):
    from workbench.views.token_strip import display_text

    return display_text(bytes([token]))


def path_nodes(html):
    """(data-index, label) of the nodes the SVG marks as on the highlighted path."""
    found = re.findall(r'<g class="wb-tree-node wb-path[^"]*" data-index="(\d+)"><title>[^<]*</title>'
                       r'<rect[^>]*/><text[^>]*>([^<]*)</text>', html)
    return [(int(i), label) for i, label in found]


def test_recorded_tree_shows_every_drafted_node_and_highlights_the_accepted_path(lm, truth):
    recorder = DraftRecorder(KnownTreeDrafter(truth))
    gen = speculative_generate(lm, PROMPT, recorder, max_new_tokens=8)
    assert gen.new_ids == truth and gen.drafter == "known_tree"
    assert [(s.drafted, s.accepted) for s in gen.steps[:2]] == [(4, 3), (0, 0)]
    view = gen.view(drafts=recorder)
    assert isinstance(view, SpeculativeView) and view.step == 0  # the step with the most accepted tokens
    tree = view.tree
    assert isinstance(tree, TreeView)
    wrong = (truth[0] + 1) % 256
    assert tree.labels == [text_of(PROMPT[-1]), text_of(wrong), *map(text_of, truth[:3]),
                           text_of(truth[3]) + " (bonus)"]
    assert tree.parents == [-1, 0, 0, 2, 3, 4]
    assert tree.highlight == [0, 2, 3, 4, 5]
    assert tree.scores == [None, 0.0, 1.0, 1.0, 1.0, None]
    html = view.to_html()
    assert [i for i, _ in path_nodes(html)] == [0, 2, 3, 4, 5]
    assert "<script" not in html and "http://" not in html and "https://" not in html and "<style>" in html
    assert "4 drafted (depth 3), 3 accepted + bonus token" in html


def test_without_a_recorder_the_tree_is_the_emitted_path(lm, truth):
    gen = speculative_generate(lm, PROMPT, KnownTreeDrafter(truth), max_new_tokens=8)
    view = gen.view(step=0, tokenizer=lm.tokenizer)
    assert view.tree.labels == [text_of(PROMPT[-1]), *map(text_of, truth[:3]), text_of(truth[3]) + " (bonus)"]
    assert view.tree.parents == [-1, 0, 1, 2, 3] and view.tree.highlight == [0, 1, 2, 3, 4]
    assert "draft tree not recorded" in view.tree.title
    plain = gen.view(step=1)  # no tokenizer: ids; step 1 drafted nothing, its root is the previous bonus token
    assert plain.tree.labels == [f"#{truth[3]}", f"#{truth[4]} (bonus)"] and plain.tree.highlight == [0, 1]


def test_timeline_summary_and_steps_table_follow_the_generation(lm, truth):
    recorder = DraftRecorder(KnownTreeDrafter(truth))
    gen = speculative_generate(lm, PROMPT, recorder, max_new_tokens=8)
    view = gen.view(drafts=recorder)
    assert isinstance(view.timeline, Plot) and view.timeline.series == {"accepted": [3.0, 0, 0, 0, 0]}
    row = view.summary.records()[0]
    # 5 steps emit 4 + 1 + 1 + 1 + 1 = 8 tokens; 3 accepted of 4 drafted; prefill + 5 verification passes.
    assert (row["steps"], row["tau"], row["acceptance"], row["forward calls"]) == (5, 8 / 5, 3 / 4, 6)
    assert isinstance(view.steps, Table) and [r["emitted"] for r in view.steps.records()] == [4, 1, 1, 1, 1]
    view.steps.selected = 2  # a click on a row shows that step's tree
    assert view.step == 2 and view.tree.labels == [text_of(truth[4]), text_of(truth[5]) + " (bonus)"]
    view.select(0)
    assert view.steps.selected == 0 and len(view.tree.labels) == 6
    assert "known_tree" in repr(view) and "accepted draft tokens per step" in repr(view)


def test_the_recorder_does_not_change_the_generation(lm):
    for name in ("prompt_lookup", "token_recycling"):
        plain = speculative_generate(lm, PROMPT, name, max_new_tokens=12)
        recorder = DraftRecorder(name)
        recorded = speculative_generate(lm, PROMPT, recorder, max_new_tokens=12)
        assert recorded.new_ids == plain.new_ids and recorded.drafter == name
        assert [s.to_dict() for s in recorded.steps] == [s.to_dict() for s in plain.steps]
        assert [len(r.tree) for r in recorder.records] == [s.drafted for s in plain.steps]
        assert all(r.tree.draft_probs is None for r in recorder.records)


def test_bad_input_is_named(lm, truth):
    recorder = DraftRecorder(KnownTreeDrafter(truth))
    gen = speculative_generate(lm, PROMPT, recorder, max_new_tokens=8)
    with pytest.raises(ValueError, match=r"step: must be None or a step index in \[0, 5\), got 5"):
        gen.view(step=5)
    with pytest.raises(ValueError, match="drafts: 4 recorded steps, but the generation has 5"):
        gen.view(drafts=recorder.records[:4])
    other = speculative_generate(lm, PROMPT, "prompt_lookup", max_new_tokens=8)
    with pytest.raises(ValueError, match="drafts"):
        other.view(drafts=recorder)
    with pytest.raises(ValueError, match="gen: must be a SpeculativeGeneration"):
        SpeculativeView(gen.to_dict())
    with pytest.raises(ValueError, match="unknown drafter 'nope'"):
        DraftRecorder("nope")
    assert isinstance(gen, SpeculativeGeneration) and callable(gen.show)
