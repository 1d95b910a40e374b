"""Explorer: controls, the tab registry, front-end messages, progress, errors in the widget, static HTML.

Uses a registered test tab (so it does not depend on any family) and the tiny seeded LM."""
import pytest

from workbench.views import (
    Control,
    Explorer,
    ExplorerTab,
    TokenStrip,
    register_tab,
    registered_tabs,
)
from workbench.views.explorer import _TABS, FAMILIES

from .helpers import URL, frontend_custom, frontend_update


class EchoTab(ExplorerTab):
    """Shows the text's characters as tokens; `fail` makes it raise, `steps` reports progress."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.calls = []

    def controls(self, lm):
        return [Control("upper", "checkbox", False), Control("steps", "slider", 2, min=0, max=5, step=1),
                Control("fail", "dropdown", "no", options=["no", ("yes", "raise an error")])]

    def run(self, lm, text, values, progress):
        self.calls.append((text, dict(values)))
        for _ in progress.iter(range(values["steps"]), "working"):
            pass
        if values["fail"] == "yes":
            raise ValueError("fail: asked to fail")
        shown = self.prefix + (text.upper() if values["upper"] else text)
        return TokenStrip.from_pieces(list(shown), title="echo")


@pytest.fixture
def echo_tab():
    register_tab("echo_test", title="Echo")(EchoTab)
    yield EchoTab
    _TABS.pop("echo_test")


def test_control_checks_and_coerces():
    slider = Control("budget", "slider", 8, min=1, max=64, step=1)
    assert slider.check(16.0) == 16 and isinstance(slider.check(16.0), int)
    with pytest.raises(ValueError, match=r"budget: must be in \[1, 64\], got 65"):
        slider.check(65)
    with pytest.raises(ValueError, match="budget: must be a whole number"):
        slider.check(2.5)
    with pytest.raises(ValueError, match="budget: must be a number"):
        slider.check("8")
    temp = Control("temperature", "slider", 0.5, min=0.0, max=2.0, step=0.05)
    assert temp.check(1) == 1 and temp.check(0.25) == 0.25
    menu = Control("method", "dropdown", "a", options=[("a", "A"), "b"])
    assert menu.option_values == ["a", "b"]
    with pytest.raises(ValueError, match=r"method: must be one of \['a', 'b'\], got 'c'"):
        menu.check("c")
    assert menu.to_dict()["options"] == [{"value": "a", "label": "A"}, {"value": "b", "label": "b"}]
    with pytest.raises(ValueError, match="kind: must be one of"):
        Control("x", "knob", 1)
    with pytest.raises(ValueError, match="min/max: slider 'x' needs both"):
        Control("x", "slider", 1)
    with pytest.raises(ValueError, match="x: must be true or false"):
        Control("x", "checkbox", 1)


def test_families_without_a_tab_say_so_plainly(tiny, monkeypatch):
    # Every built-in family has a tab by now, so a made-up family stands in for one that has not landed.
    monkeypatch.setitem(FAMILIES, "made_up", "Made up")
    registered = registered_tabs()
    assert all(name in registered for name in FAMILIES if name != "made_up")
    explorer = Explorer(tiny, "hi", autorun=False)
    assert [t["name"] for t in explorer.bar.tabs][: len(FAMILIES)] == list(FAMILIES)
    spec = next(s for s in explorer.bar.tabs if s["name"] == "made_up")
    assert not spec["available"] and "has not landed yet" in spec["note"]
    frontend_update(explorer.bar, active="made_up")
    assert explorer.active == "made_up" and explorer.bar.note.startswith("Made up")
    assert explorer.bar.controls == [] and explorer.body.children == ()
    assert "has not landed yet" in explorer.to_html() and "has not landed yet" in repr(explorer)
    with pytest.raises(ValueError, match="has not landed yet"):
        explorer.run()


def test_a_registered_tab_plugs_in_without_editing_the_explorer(tiny, echo_tab):
    explorer = Explorer(tiny, "abc", tab="echo_test", options={"echo_test": {"prefix": ">"}})
    assert explorer.tab_names[-1] == "echo_test"
    assert {"name": "echo_test", "title": "Echo", "available": True, "note": ""} in explorer.bar.tabs
    assert [t.bytes for t in explorer.views[0].tokens] == [b">", b"a", b"b", b"c"]  # autorun on first show
    assert explorer.bar.status == "done" and explorer.body.children == (explorer.views[0],)
    assert explorer.bar.values == {"upper": False, "steps": 2, "fail": "no"}
    assert [c["name"] for c in explorer.bar.controls] == ["upper", "steps", "fail"]


def test_run_message_from_the_front_end_reruns_with_new_values(tiny, echo_tab):
    explorer = Explorer(tiny, "abc", tab="echo_test")
    frontend_custom(explorer.bar, {"type": "run", "text": "xy", "values": {"upper": True, "steps": 1}})
    assert explorer.text == "xy" and explorer.values["upper"] is True
    assert [t.text for t in explorer.views[0].tokens] == ["X", "Y"]
    assert explorer.bar.values == {"upper": True, "steps": 1, "fail": "no"}
    assert explorer.body.children == (explorer.views[0],)


def test_progress_is_reported_while_running(tiny, echo_tab):
    explorer = Explorer(tiny, "abc", tab="echo_test", autorun=False)
    seen = []
    explorer.bar.observe(lambda c: seen.append((c["name"], c["new"])), names=["progress", "status"])
    explorer.run(steps=4)
    progress = [v for n, v in seen if n == "progress"]
    assert progress == [0.25, 0.5, 0.75, 1.0]  # 0.0 at start is the default, so no change is recorded
    assert [v for n, v in seen if n == "status"] == ["running", "done"]
    assert explorer.bar.message.startswith("done in ")


def test_errors_show_in_the_widget_and_the_kernel_stays_usable(tiny, echo_tab):
    explorer = Explorer(tiny, "abc", tab="echo_test")
    frontend_custom(explorer.bar, {"type": "run", "values": {"fail": "yes"}})  # must not raise
    assert explorer.bar.status == "error" and explorer.bar.error == "ValueError: fail: asked to fail"
    assert explorer.body.children == () and explorer.views == []
    assert "ValueError: fail: asked to fail" in explorer.to_html()
    frontend_custom(explorer.bar, {"type": "run", "values": {"steps": 99}})  # bad value: checked before running
    assert explorer.bar.error.startswith("ValueError: steps: must be in [0, 5], got 99")
    calls = len(explorer._states["echo_test"].tab.calls)
    frontend_custom(explorer.bar, {"type": "run", "values": {"nope": 1}})
    assert "has no control ['nope']" in explorer.bar.error
    frontend_custom(explorer.bar, {"type": "dance"})
    assert "message: expected" in explorer.bar.error
    assert len(explorer._states["echo_test"].tab.calls) == calls  # none of those ran the tab
    frontend_custom(explorer.bar, {"type": "run", "values": {"fail": "no"}})
    assert explorer.bar.status == "done" and explorer.bar.error == "" and len(explorer.views) == 1
    with pytest.raises(ValueError, match="fail: asked to fail"):
        explorer.run(fail="yes")  # from Python the error is also raised


def test_switching_tabs_keeps_each_tabs_state(tiny, echo_tab):
    explorer = Explorer(tiny, "abc", tab="echo_test")
    explorer.run(upper=True)
    frontend_update(explorer.bar, active="attribution")
    frontend_update(explorer.bar, active="echo_test")
    assert explorer.values["upper"] is True and explorer.bar.values["upper"] is True
    assert [t.text for t in explorer.views[0].tokens] == ["A", "B", "C"]
    assert len(explorer._states["echo_test"].tab.calls) == 2  # switching back did not re-run


def test_constructor_checks(tiny, echo_tab):
    with pytest.raises(ValueError, match="tab: must be one of"):
        Explorer(tiny, "x", tab="nope")
    with pytest.raises(ValueError, match="text: must be a str"):
        Explorer(tiny, 3)
    with pytest.raises(ValueError, match="lm: must be a workbench LM"):
        Explorer(object(), "x")
    with pytest.raises(ValueError, match=r"options: no registered tab named \['nope'\]"):
        Explorer(tiny, "x", options={"nope": {}})
    with pytest.raises(ValueError, match="not an ExplorerTab subclass"):
        register_tab("bad")(int)


def test_static_html_and_text(tiny, echo_tab):
    make = lambda: Explorer(tiny, "a<b", tab="echo_test")
    html = make().to_html()
    assert html == make().to_html()
    assert not URL.search(html) and "<script" not in html
    assert html.count("<style>") == 1  # nested views share the outer stylesheet
    assert "Echo" in html and "text: &#x27;a&lt;b&#x27;" in html and 'class="wb-token"' in html
    text = repr(make())
    assert text.startswith("Explorer(active='echo_test', tabs: tokenization, ") and "a|<|b" in text


def test_notebook_display_bundle(tiny, echo_tab):
    from IPython.core.formatters import DisplayFormatter

    explorer = Explorer(tiny, "ab", tab="echo_test")
    data, _ = DisplayFormatter().format(explorer)
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/html"] == explorer.to_html()
    assert data["text/plain"].startswith("Explorer(active='echo_test'")  # ipywidgets cuts it at 110 chars
