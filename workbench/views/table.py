"""A small results table: rows of records (dicts, dataclasses with `to_dict()`, or a pandas DataFrame).
Clicking a column header sorts by it (again: reverses); clicking a row selects it."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import traitlets

from workbench.views.base import InvalidState, WidgetView
from workbench.views.html import escape, format_number, widget_source

MAX_ROWS = 2000


def _cell(value: Any) -> Any:
    """A JSON-safe cell: None, bool, int, finite float (NaN/inf -> None) or str."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy / torch scalars
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _records(rows: Any) -> list[dict[str, Any]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
        return rows.to_dict(orient="records")
    records = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            records.append(row)
        elif hasattr(row, "to_dict"):
            records.append(row.to_dict())
        elif dataclasses.is_dataclass(row) and not isinstance(row, type):
            records.append(dataclasses.asdict(row))
        else:
            raise ValueError(f"rows: item {i} must be a dict, a dataclass or have to_dict(), got {type(row).__name__}")
    return records


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (2, 0, "")
    if isinstance(value, (int, float)):
        return (0, value, "")
    return (1, 0, str(value))


class Table(WidgetView):
    """`columns` are the column names, `rows` the cells (lists, in the order given). `order` is the display
    order after sorting by `sort_by` (a column name, "" for none); `selected` indexes `rows`."""

    kind = "table"
    _esm = widget_source("table.js")

    columns = traitlets.List(trait=traitlets.Unicode())
    rows = traitlets.List()
    title = traitlets.Unicode("")
    sort_by = traitlets.Unicode("").tag(sync=True)
    ascending = traitlets.Bool(True).tag(sync=True)
    order = traitlets.List(trait=traitlets.Int())
    selected = traitlets.Int(-1).tag(sync=True)

    def __init__(self, rows: Any, *, columns: Sequence[str] | None = None, title: str = "") -> None:
        records = _records(rows)
        if len(records) > MAX_ROWS:
            raise ValueError(f"rows: a view table holds at most {MAX_ROWS} rows, got {len(records)}")
        names = list(columns) if columns is not None else list(dict.fromkeys(k for r in records for k in r))
        cells = [[_cell(r.get(name)) for name in names] for r in records]
        super().__init__(columns=[str(n) for n in names], rows=cells, title=title, order=list(range(len(cells))))
        self.refresh()
        self.observe(lambda _: self.refresh(), names=["columns", "rows", "title", "order"])

    @traitlets.validate("sort_by")
    def _validate_sort_by(self, proposal: Any) -> str:
        value = proposal["value"]
        if value and value not in self.columns:
            raise InvalidState(f"sort_by: must be '' (unsorted) or one of {self.columns}, got {value!r}")
        return value

    @traitlets.validate("selected")
    def _validate_selected(self, proposal: Any) -> int:
        value = proposal["value"]
        if not -1 <= value < len(self.rows):
            raise InvalidState(f"selected: must be -1 (none) or a row index in [0, {len(self.rows)}), got {value}")
        return value

    @traitlets.observe("sort_by", "ascending", "rows")
    def _update_order(self, change: Any) -> None:
        if change["name"] == "rows" and self.selected >= len(self.rows):
            self.selected = -1
        order = list(range(len(self.rows)))
        if self.sort_by:
            j = self.columns.index(self.sort_by)
            order.sort(key=lambda i: _sort_key(self.rows[i][j]), reverse=not self.ascending)
            if not self.ascending:  # keep empty cells last either way
                order.sort(key=lambda i: self.rows[i][j] is None)
        self.order = order

    def sort(self, column: str, ascending: bool = True) -> Table:
        self.sort_by, self.ascending = column, ascending
        return self

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts, in display order."""
        return [dict(zip(self.columns, self.rows[i])) for i in self.order]

    def html_body(self) -> str:
        head = []
        for name in self.columns:
            arrow = (" \u25b2" if self.ascending else " \u25bc") if name == self.sort_by else ""
            cls = ' class="wb-sorted"' if name == self.sort_by else ""
            head.append(f'<th{cls} data-column="{escape(name)}">{escape(name)}{arrow}</th>')
        body = []
        for i in self.order:
            tds = "".join(
                f'<td class="wb-num">{escape(format_number(v))}</td>' if isinstance(v, (int, float))
                and not isinstance(v, bool) else f"<td>{escape(format_number(v))}</td>" for v in self.rows[i])
            cls = ' class="wb-selected"' if i == self.selected else ""
            body.append(f'<tr data-index="{i}"{cls}>{tds}</tr>')
        title = f'<div class="wb-title">{escape(self.title)}</div>' if self.title else ""
        return (f'{title}<table class="wb-table"><thead><tr>{"".join(head)}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>')

    def to_text(self) -> str:
        shown = [self.columns] + [[format_number(v) for v in self.rows[i]] for i in self.order[:30]]
        widths = [max(len(r[j]) for r in shown) for j in range(len(self.columns))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in shown]
        if len(self.rows) > 30:
            lines.append(f"... ({len(self.rows)} rows)")
        return (f"{self.title}\n" if self.title else "") + "\n".join(lines)
