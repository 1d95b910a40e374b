"""The Explorer's attribution tab and Attribution.view() on the tiny seeded LM: linked selection (target strip,
heatmap row, source colours equal the attribution row), static HTML self-contained and holding the tokens."""
import numpy as np
import pytest

from workbench.attribution import attribute
from workbench.attribution.view import AttributionView
from workbench.views import Explorer, Heatmap, Table, TokenStrip

from .helpers import URL, frontend_update

TEXT = "The cat sat."


def test_tab_runs_and_selection_colours_the_source(tiny):
    explorer = Explorer(tiny, TEXT, tab="attribution", autorun=False)
    targets, sources, heatmap, cost = explorer.run(method="occlusion", granularity="word", target=" Yes")
    assert isinstance(targets, TokenStrip) and isinstance(sources, TokenStrip)
    assert isinstance(heatmap, Heatmap) and isinstance(cost, Table)
    want = attribute(tiny, TEXT, " Yes", method="occlusion", granularity="word", progress=False)
    assert [t.text for t in sources.tokens] == ["The", "\u00b7cat", "\u00b7sat."]
    assert heatmap.shape == want.matrix.shape
    np.testing.assert_allclose(sources.scores, want.matrix[0], atol=1e-5)
    frontend_update(targets, selected=2)  # a click on the third target token
    assert heatmap.selected_row == 2
    np.testing.assert_allclose(sources.scores, want.matrix[2], atol=1e-5)
    frontend_update(heatmap, selected_row=1)  # a click on a heatmap row
    assert targets.selected == 1
    np.testing.assert_allclose(sources.scores, want.matrix[1], atol=1e-5)
    records = {r["cost"]: r["value"] for r in cost.records()}
    assert records["evaluations"] == 4 and records["forward_passes"] >= 1


def test_tab_explains_the_generation_and_reports_bad_input(tiny):
    explorer = Explorer(tiny, TEXT, tab="attribution", autorun=False)
    targets, *_ = explorer.run(method="saliency", max_new_tokens=3)
    assert 1 <= len(targets.tokens) <= 3
    with pytest.raises(ValueError, match="method: must be one of"):
        explorer.run(method="nope")
    explorer = Explorer(tiny, "", tab="attribution")
    assert "text: is empty" in explorer.error


def test_view_static_html_is_self_contained_and_has_the_tokens(tiny):
    a = attribute(tiny, TEXT, " Yes", method="input_x_gradient", granularity="word", progress=False)
    view = a.view()
    assert isinstance(view, AttributionView)
    html = view.to_html()
    assert "<script" not in html and not URL.search(html) and "<style>" in html
    for token in ["The", "\u00b7cat", "\u00b7sat.", "\u00b7", "Y", "e", "s"]:  # sources by word, target bytes
        assert f">{token}</span>" in html, token
    assert "input_x_gradient" in html and "forward_passes" in html
    assert html == a.view().to_html()  # deterministic
    view.select(-1)
    assert all(s is None for s in view.sources.scores)
    with pytest.raises(ValueError, match="row: must be"):
        AttributionView(a, row=5)
