"""Text and HTML renderings of an Attribution (self-contained: no scripts, no external resources).

The HTML is a heatmap table: one row per target, one column per source unit, red for positive and blue for
negative values, intensity relative to the largest absolute value in the matrix; the cost is shown beside it.
The interactive view (target strip, method dropdown) lives in workbench.views.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from workbench.attribution.result import Attribution

MAX_TEXT_COLUMNS = 12


def label(text: str, width: int | None = None) -> str:
    """A token's text made visible: repr-style escapes for whitespace and control characters."""
    shown = repr(text)[1:-1] if text else "\u2205"
    if width is not None and len(shown) > width:
        shown = shown[: width - 1] + "\u2026"
    return shown


def header(a: Attribution) -> str:
    granularity = a.granularity if isinstance(a.granularity, str) else f"{len(a.granularity)} spans"
    rows, cols = a.matrix.shape
    return (f"Attribution(method={a.method!r}, granularity={granularity!r}, target={a.target_kind}, "
            f"{rows} targets x {cols} sources; cost: {a.cost})")


def text_table(a: Attribution) -> str:
    """A plain-text table (all columns when there are few, else each row's top sources)."""
    lines = [header(a)]
    cols = a.matrix.shape[1]
    names = [label(t.text, 14) for t in a.targets]
    width = max([len(n) for n in names] + [6])
    if cols <= MAX_TEXT_COLUMNS:
        heads = [label(s.text, 9) for s in a.sources]
        lines.append(" " * width + "  " + " ".join(f"{h:>9}" for h in heads))
        for name, row in zip(names, a.matrix):
            lines.append(f"{name:<{width}}  " + " ".join(f"{v:>9.4g}" for v in row))
    else:
        for r, name in enumerate(names):
            top = ", ".join(f"{label(text, 12)}={value:.3g}" for text, value in a.top(r, 5))
            lines.append(f"{name:<{width}}  top: {top}")
    return "\n".join(lines)


def _colour(value: float, scale: float) -> str:
    if not np.isfinite(value) or scale <= 0:
        return "transparent"
    alpha = min(abs(value) / scale, 1.0) * 0.85
    rgb = "214,39,40" if value > 0 else "31,119,180"
    return f"rgba({rgb},{alpha:.3f})"


def html_table(a: Attribution) -> str:
    """A self-contained HTML heatmap of the matrix with the cost beside it."""
    finite = a.matrix[np.isfinite(a.matrix)]
    scale = float(np.abs(finite).max()) if finite.size else 0.0
    esc = html.escape
    cell = "padding:2px 4px;border:1px solid #ddd;font-family:monospace;white-space:pre;"
    head = "".join(f"<th style='{cell}' title='bytes {s.start}-{s.end}'>{esc(label(s.text, 16))}</th>"
                   for s in a.sources)
    body = []
    for t, row in zip(a.targets, a.matrix):
        cells = "".join(
            f"<td style='{cell}background:{_colour(float(v), scale)}' title='{float(v):.6g}'>{float(v):.3g}</td>"
            for v in row
        )
        body.append(f"<tr><th style='{cell}text-align:left'>{esc(label(t.text, 24))}</th>{cells}</tr>")
    granularity = a.granularity if isinstance(a.granularity, str) else f"{len(a.granularity)} spans"
    return (
        "<div class='workbench-attribution'>"
        f"<div><b>Attribution</b> &middot; method <code>{esc(a.method)}</code> &middot; granularity "
        f"{esc(str(granularity))} &middot; target: {esc(a.target_kind)} &middot; "
        f"{a.matrix.shape[0]} targets &times; {a.matrix.shape[1]} sources</div>"
        f"<div style='display:flex;gap:1em;align-items:flex-start'>"
        f"<div style='overflow-x:auto'><table style='border-collapse:collapse'>"
        f"<tr><th style='{cell}'>target \\ source</th>{head}</tr>{''.join(body)}</table></div>"
        f"<div style='font-size:90%'><b>cost</b><br>{esc(str(a.cost)).replace(', ', '<br>')}</div>"
        "</div></div>"
    )
