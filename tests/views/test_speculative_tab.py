"""The Explorer's speculative decoding tab on the tiny seeded LM: its comparison and view match a direct
speculative_generate and lm.generate (greedy: identical tokens), bad input lands in the widget before any work,
and the tab is registered, so the Explorer no longer says the family has not landed."""
import pytest

from workbench.speculative import speculative_generate
from workbench.speculative.view import SpeculativeView
from workbench.views import Explorer, Table, registered_tabs
from workbench.views.explorer import FAMILIES

TEXT = "the cat sat on the mat, the cat sat on the mat"


@pytest.mark.parametrize("drafter", ["prompt_lookup", "token_recycling"])
def test_tab_matches_a_direct_speculative_generate(tiny, drafter):
    explorer = Explorer(tiny, TEXT, tab="speculative", autorun=False)
    comparison, view = explorer.run(drafter=drafter, verifier="greedy", budget=6, max_new_tokens=12)
    direct = speculative_generate(tiny, TEXT, drafter, "greedy", max_new_tokens=12, budget=6)
    reference = tiny.generate(TEXT, max_new_tokens=12)
    assert isinstance(view, SpeculativeView) and view.gen.new_ids == direct.new_ids == reference.new_ids
    assert [s.to_dict() for s in view.gen.steps] == [s.to_dict() for s in direct.steps]
    assert view.records is not None and len(view.records) == len(direct.steps)  # full draft trees recorded
    assert isinstance(comparison, Table)
    auto, spec = comparison.records()
    assert (auto["new tokens"], auto["forward calls"]) == (12, reference.forward_calls)
    assert (spec["forward calls"], spec["same tokens"]) == (direct.forward_calls, True)
    assert spec["decoding"] == f"speculative ({drafter} + greedy)"
    assert spec["speedup"] == pytest.approx(auto["seconds"] / spec["seconds"])
    assert "identical output" in comparison.title
    html = explorer.to_html()
    assert "accepted draft tokens per step" in html and "identical output" in html


def test_controls_offer_model_free_drafters_and_the_verifier_registry(tiny):
    from workbench.speculative import VERIFIERS

    explorer = Explorer(tiny, TEXT, tab="speculative", autorun=False)
    controls = {c["name"]: c for c in explorer.bar.controls}
    offered = [o["value"] for o in controls["drafter"]["options"]]
    assert offered[0] == "prompt_lookup" and "token_recycling" in offered
    assert not {"draft_model", "dyspec"} & set(offered)  # these need a draft model: added as instances
    assert len(offered) == len(set(offered))
    assert [o["value"] for o in controls["verifier"]["options"]] == sorted(VERIFIERS)
    assert explorer.values == {"drafter": "prompt_lookup", "verifier": "greedy", "budget": 16, "max_new_tokens": 32}


def test_an_extra_drafter_instance_can_be_offered(tiny):
    from workbench.speculative.drafters import PromptLookupDrafter

    explorer = Explorer(tiny, TEXT, tab="speculative", autorun=False,
                        options={"speculative": {"drafters": {"lookup2": PromptLookupDrafter(max_ngram=2)}}})
    _, view = explorer.run(drafter="lookup2", max_new_tokens=8)
    direct = speculative_generate(tiny, TEXT, PromptLookupDrafter(max_ngram=2), max_new_tokens=8)
    assert view.gen.new_ids == direct.new_ids and view.gen.drafter == "prompt_lookup"
    with pytest.raises(ValueError, match=r"drafters\['x'\]: must be a Drafter or one of"):
        Explorer(tiny, TEXT, tab="speculative", options={"speculative": {"drafters": {"x": 3}}})


def test_bad_input_lands_in_the_widget_before_any_work(tiny):
    explorer = Explorer(tiny, "", tab="speculative")
    assert "text: is empty" in explorer.error
    before = tiny.counters.snapshot()
    with pytest.raises(ValueError, match="verifier: 'rsd' needs draft distributions"):
        explorer.run(text=TEXT, verifier="rsd")
    assert (tiny.counters.snapshot() - before).forward_calls == 0
    assert "verifier:" in explorer.bar.error
    with pytest.raises(ValueError, match="drafter: must be one of"):
        explorer.run(drafter="draft_model")


def test_speculative_decoding_has_landed_and_the_not_landed_note_still_works(tiny, monkeypatch):
    assert "speculative" in registered_tabs()
    explorer = Explorer(tiny, TEXT, tab="speculative", autorun=False)
    spec = next(t for t in explorer.bar.tabs if t["name"] == "speculative")
    assert spec == {"name": "speculative", "title": "Speculative decoding", "available": True, "note": ""}
    assert "has not landed" not in explorer.to_html() and "not landed" not in repr(explorer)
    # A family without a tab still says so (every built-in family now has one, so use a made-up family).
    monkeypatch.setitem(FAMILIES, "made_up", "Made up")
    explorer = Explorer(tiny, TEXT, tab="made_up", autorun=False)
    assert "Made up has not landed yet" in explorer.bar.note and "has not landed yet" in explorer.to_html()
