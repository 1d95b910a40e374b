"""The view of an Attribution: target tokens as a strip; selecting one (a click on the strip, or on a heatmap row)
colours the source text by that target's attribution; the full heatmap; the cost beside them.

    a = attribute(lm, "The capital of France is", " Paris", method="occlusion")
    a.show()                               # live (anywidget) in a notebook; a.view().to_html() is static HTML

`Attribution.view()` / `.show()` call `attribution_view` (its own `_repr_html_`, the plain heatmap table of
render.py, stays the static form).
"""
from __future__ import annotations

import ipywidgets
import numpy as np

from workbench.attribution.render import label
from workbench.attribution.result import Attribution
from workbench.views.base import View
from workbench.views.heatmap import Heatmap
from workbench.views.html import escape
from workbench.views.table import Table
from workbench.views.token_strip import Token, TokenStrip


def source_tokens(a: Attribution, row: int) -> list[Token]:
    """The source units as strip tokens, scored by the attribution of target row `row` (-1: no scores)."""
    data = a.prompt.encode("utf-8")
    scores = a.matrix[row] if row >= 0 else [None] * len(a.sources)
    return [Token(u.token_ids[0] if len(u.token_ids) == 1 else None, data[u.start:u.end], u.start, u.end,
                  None if s is None else float(s)) for u, s in zip(a.sources, scores)]


def target_tokens(a: Attribution) -> list[Token]:
    """The target rows as strip tokens (token rows: their bytes in the target text; value rows: their name)."""
    data = a.target_text.encode("utf-8")
    out = []
    for t in a.targets:
        blob = data[t.start:t.end] if t.kind == "token" and t.end > t.start else t.text.encode("utf-8")
        out.append(Token(t.token_ids[0] if t.token_ids else None, blob, t.start, t.end,
                         None if a.target_values is None else float(a.target_values[len(out)])))
    return out


def cost_table(a: Attribution) -> Table:
    rows = [{"cost": k, "value": v} for k, v in a.cost.to_dict().items()]
    rows += [{"cost": f"option {k}", "value": str(v)} for k, v in a.options.items()]
    return Table(rows, columns=["cost", "value"], title=f"{a.method}: cost")


class AttributionView(View, ipywidgets.VBox):
    """Target strip, source strip coloured by the selected target's attribution, heatmap, cost table (linked)."""

    kind = "attribution"

    def __init__(self, attribution: Attribution, row: int = 0) -> None:
        if not isinstance(attribution, Attribution):
            raise ValueError(f"attribution: must be an Attribution, got {type(attribution).__name__}")  # noqa: TRY004
        rows = attribution.matrix.shape[0]
        if not -1 <= row < rows:
            raise ValueError(f"row: must be -1 (none) or in [0, {rows}), got {row}")
        self.attribution = a = attribution
        value_label = "log p" if a.target_kind in ("continuation", "generation") else "value"
        self.targets = TokenStrip(target_tokens(a), title=f"targets ({a.target_kind}): click one",
                                  score_label=value_label)
        self.sources = TokenStrip(source_tokens(a, row), score_label="attribution", scale="diverging"
                                  if np.nanmin(a.matrix) < 0 else "auto")
        self.heatmap = Heatmap(a.matrix, row_labels=[label(t.text, 24) for t in a.targets],
                               col_labels=[label(s.text, 16) for s in a.sources], value_label="attribution",
                               title=f"{a.method} ({a.granularity if isinstance(a.granularity, str) else 'spans'})")
        self.cost = cost_table(a)
        self.heatmap.link_rows(self.targets)
        self.heatmap.observe(lambda change: self.select(change["new"]), names="selected_row")
        super().__init__(children=[ipywidgets.HBox([ipywidgets.VBox([self.targets, self.sources, self.heatmap]),
                                                    self.cost])])
        self.select(row)

    def select(self, row: int) -> None:
        """Select target row `row` (-1: none): the strip, the heatmap row and the source colours follow."""
        self.targets.selected = row
        self.heatmap.selected_row = row
        self.sources.tokens = source_tokens(self.attribution, row)
        name = label(self.attribution.targets[row].text, 24) if row >= 0 else "(select a target)"
        self.sources.title = f"source coloured by its attribution to {name}"

    @property
    def parts(self) -> list[View]:
        return [self.targets, self.sources, self.heatmap, self.cost]

    def html_body(self) -> str:
        left = "".join(f"<div>{v.html_body()}</div>" for v in [self.targets, self.sources, self.heatmap])
        return (f'<div class="wb-title">{escape(self.attribution.method)}: {escape(repr(self.attribution.prompt))}'
                f"</div><div style=\"display:flex;gap:1em;align-items:flex-start\"><div>{left}</div>"
                f"<div>{self.cost.html_body()}</div></div>")

    def to_text(self) -> str:
        return "\n".join(v.to_text() for v in self.parts)

    def show(self) -> AttributionView:
        from IPython.display import display

        display(self)
        return self


def attribution_view(attribution: Attribution, row: int = 0) -> AttributionView:
    """The linked view of `attribution` with target row `row` selected."""
    return AttributionView(attribution, row)
