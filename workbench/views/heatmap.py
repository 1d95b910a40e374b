"""Heatmap with linked selection: clicking a row selects it and highlights the column(s) where that row is
largest (e.g. rows = output tokens, columns = input tokens: click an output, see which input drove it)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets

from workbench.views.base import InvalidState, WidgetView
from workbench.views.html import ColorScale, colored_style, escape, finite_or_none, format_number, widget_source
from workbench.views.token_strip import TokenStrip

MAX_CELLS = 40_000


def _as_matrix(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor
        values = values.detach().cpu().float().numpy()
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"values: must be a 2-D array of numbers ({err})") from None
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(f"values: must be a non-empty 2-D array, got shape {tuple(matrix.shape)}")
    if matrix.size > MAX_CELLS:
        raise ValueError(f"values: at most {MAX_CELLS} cells can be drawn, got {matrix.shape[0]}x{matrix.shape[1]}")
    return matrix


def _labels(labels: Sequence[object] | None, n: int, name: str) -> list[str]:
    if labels is None:
        return [str(i) for i in range(n)]
    labels = [str(x) for x in labels]
    if len(labels) != n:
        raise ValueError(f"{name}: expected {n} labels, got {len(labels)}")
    return labels


def top_columns(row: Sequence[float | None], k: int) -> list[int]:
    """Indices of the k largest finite values of `row`, largest first (ties: lower index first)."""
    finite = [(v, j) for j, v in enumerate(row) if v is not None]
    finite.sort(key=lambda vj: (-vj[0], vj[1]))
    return [j for _, j in finite[:k]]


class Heatmap(WidgetView):
    """A matrix as coloured cells with row/column labels. `selected_row` (click a row) drives
    `highlighted_cols` (its `top_k` largest columns); `selected_col` is the clicked column header."""

    kind = "heatmap"
    _esm = widget_source("heatmap.js")

    values = traitlets.List()
    row_labels = traitlets.List(trait=traitlets.Unicode())
    col_labels = traitlets.List(trait=traitlets.Unicode())
    title = traitlets.Unicode("")
    value_label = traitlets.Unicode("value")
    scale = traitlets.Unicode("auto")
    top_k = traitlets.Int(1)
    selected_row = traitlets.Int(-1).tag(sync=True)
    selected_col = traitlets.Int(-1).tag(sync=True)
    highlighted_cols = traitlets.List(trait=traitlets.Int()).tag(sync=True)

    def __init__(self, values: Any, *, row_labels: Sequence[object] | None = None,
                 col_labels: Sequence[object] | None = None, title: str = "", value_label: str = "value",
                 scale: str = "auto", top_k: int = 1) -> None:
        matrix = _as_matrix(values)
        rows = _labels(row_labels, matrix.shape[0], "row_labels")
        cols = _labels(col_labels, matrix.shape[1], "col_labels")
        if not 1 <= top_k <= matrix.shape[1]:
            raise ValueError(f"top_k: must be in [1, {matrix.shape[1]}] (number of columns), got {top_k}")
        ColorScale([], scale)
        cells = [[finite_or_none(v) for v in row] for row in matrix.tolist()]
        super().__init__(values=cells, row_labels=rows, col_labels=cols, title=title, value_label=value_label,
                         scale=scale, top_k=top_k)
        self.refresh()
        self.observe(self._on_data, names=["values", "row_labels", "col_labels", "title", "value_label", "scale"])

    def _on_data(self, change: Any) -> None:
        if change["name"] == "values":
            if self.selected_row >= self.shape[0]:
                self.selected_row = -1
            if self.selected_col >= self.shape[1]:
                self.selected_col = -1
            self._update_highlight(None)
        self.refresh()

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.values), len(self.values[0])

    @traitlets.validate("selected_row", "selected_col")
    def _validate_selection(self, proposal: Any) -> int:
        name, value = proposal["trait"].name, proposal["value"]
        n = self.shape[0] if name == "selected_row" else self.shape[1]
        if not -1 <= value < n:
            raise InvalidState(f"{name}: must be -1 (none) or an index in [0, {n}), got {value}")
        return value

    @traitlets.observe("selected_row", "top_k")
    def _update_highlight(self, _: Any) -> None:
        row = self.selected_row
        self.highlighted_cols = [] if row < 0 else top_columns(self.values[row], self.top_k)

    # ---- linking to token strips ----------------------------------------------------------------------
    def link_columns(self, strip: TokenStrip) -> None:
        """Selecting a row here selects its top column's token in `strip` (one token per column)."""
        if len(strip.tokens) != self.shape[1]:
            raise ValueError(f"strip: needs {self.shape[1]} tokens (one per column), has {len(strip.tokens)}")
        self.observe(lambda ch: setattr(strip, "selected", ch["new"][0] if ch["new"] else -1), "highlighted_cols")

    def link_rows(self, strip: TokenStrip) -> None:
        """Clicking a token in `strip` selects the matching row here (one token per row)."""
        if len(strip.tokens) != self.shape[0]:
            raise ValueError(f"strip: needs {self.shape[0]} tokens (one per row), has {len(strip.tokens)}")
        strip.observe(lambda ch: setattr(self, "selected_row", ch["new"]), "selected")

    # ---- rendering ----------------------------------------------------------------------------------
    def _cell_title(self, i: int, j: int) -> str:
        return f"{self.row_labels[i]} -> {self.col_labels[j]}: {self.value_label} {format_number(self.values[i][j])}"

    def html_body(self) -> str:
        scale = ColorScale([v for row in self.values for v in row], self.scale)
        highlighted = set(self.highlighted_cols)
        head = ['<th></th>']
        for j, label in enumerate(self.col_labels):
            cls = "wb-hm-col" + (" wb-highlight" if j in highlighted else "") + (
                " wb-selected" if j == self.selected_col else "")
            head.append(f'<th class="{cls}" data-col="{j}" title="{escape(label)}">{escape(label)}</th>')
        body = []
        for i, (label, row) in enumerate(zip(self.row_labels, self.values)):
            cells = []
            for j, value in enumerate(row):
                cls = "wb-hm-cell" + (" wb-highlight" if i == self.selected_row and j in highlighted else "")
                cells.append(f'<td class="{cls}" data-row="{i}" data-col="{j}" '
                             f'title="{escape(self._cell_title(i, j))}"{colored_style(scale(value))}></td>')
            tr_cls = ' class="wb-selected"' if i == self.selected_row else ""
            body.append(f'<tr data-row="{i}"{tr_cls}><th class="wb-hm-row" data-row="{i}">{escape(label)}</th>'
                        f'{"".join(cells)}</tr>')
        title = f'<div class="wb-title">{escape(self.title)}</div>' if self.title else ""
        default = f"{self.shape[0]}x{self.shape[1]}; click a row to highlight its largest column"
        return (f'{title}<table class="wb-hm"><thead><tr>{"".join(head)}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>{scale.legend_html(self.value_label)}'
                f'<div class="wb-detail" data-default="{escape(default)}">{escape(default)}</div>')

    def to_text(self) -> str:
        finite = [v for row in self.values for v in row if v is not None]
        span = f"{format_number(min(finite, default=None))}..{format_number(max(finite, default=None))}"
        lines = [f"Heatmap({self.title + ': ' if self.title else ''}{self.shape[0]}x{self.shape[1]}, "
                 + f"{self.value_label} {span})"]
        if self.selected_row >= 0:
            cols = ", ".join(self.col_labels[j] for j in self.highlighted_cols)
            lines.append(f"row {self.row_labels[self.selected_row]!r} -> top: {cols}")
        return "\n".join(lines)
