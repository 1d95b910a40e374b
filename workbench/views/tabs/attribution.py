"""Explorer tab "attribution": attribute a target (typed, or the model's own greedy continuation when the
target box is empty) to the text with a method from workbench.attribution.METHODS at a granularity. Shows the
target tokens as a strip (click one, or a heatmap row, to colour the source text by its attribution), the full
heatmap, and the cost (forward/backward passes, tokens, seconds) beside them."""
from __future__ import annotations

from typing import Any

from workbench.views.explorer import Control, ExplorerTab, Progress, register_tab


@register_tab("attribution", title="Attribution")
class AttributionTab(ExplorerTab):
    """Controls: method, granularity, target text (empty: explain the greedy generation), new tokens."""

    def controls(self, lm: Any) -> list[Control]:
        from workbench.attribution import GRANULARITIES
        from workbench.attribution.methods.registry import METHOD_REGISTRY

        names = METHOD_REGISTRY.names()
        return [
            Control("method", "dropdown", "occlusion" if "occlusion" in names else names[0], options=names),
            Control("granularity", "dropdown", "token", options=list(GRANULARITIES)),
            Control("target", "text", "", label="target (empty: greedy generation)"),
            Control("max_new_tokens", "slider", 4, label="generated tokens", min=1, max=32, step=1),
        ]

    def run(self, lm: Any, text: str, values: dict[str, Any], progress: Progress) -> list[Any]:
        from workbench.attribution import attribute
        from workbench.attribution.view import AttributionView

        if not text:
            raise ValueError("text: is empty; type a prompt to attribute over")
        target = values["target"] or None
        what = repr(values["target"]) if target else f"the greedy generation ({values['max_new_tokens']} tokens)"
        progress(None, f"{values['method']}: attributing {what}")
        a = attribute(lm, text, target, method=values["method"], granularity=values["granularity"],
                      max_new_tokens=values["max_new_tokens"], progress=False)
        view = AttributionView(a)
        self.last = view
        return view.parts
