"""Small helpers for the static HTML of every view: escaping, number formatting, colour scales, stable ids.

Everything here is deterministic: the same data gives byte-identical HTML, so saved notebooks and nbconvert
output do not change when a notebook is re-run, and tests can compare outputs exactly.
"""
from __future__ import annotations

import hashlib
import html
import json
import math
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache

# ColorBrewer "Blues" (sequential) and "RdBu" reversed (diverging: blue negative, red positive) anchors.
SEQUENTIAL = ("#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b")
DIVERGING = ("#2166ac", "#92c5de", "#f7f7f7", "#f4a582", "#b2182b")
SCALES = ("auto", "sequential", "diverging")


def escape(text: object) -> str:
    """HTML-escape `text` (quotes included, so the result is safe inside attributes too)."""
    return html.escape(str(text), quote=True)


def stable_id(kind: str, *payload: object) -> str:
    """A deterministic element id: `wb-<kind>-<10 hex digits of sha1(payload)>`."""
    blob = json.dumps(payload, sort_keys=True, default=repr, ensure_ascii=True).encode()
    return f"wb-{kind}-{hashlib.sha1(blob).hexdigest()[:10]}"


def format_number(value: object) -> str:
    """Compact text for a table cell or tooltip: ints as-is, floats to 4 significant digits, None as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def finite_or_none(value: object) -> float | None:
    """float(value), or None for None / NaN / +-inf (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _interpolate(anchors: Sequence[str], t: float) -> str:
    """Colour at position t in [0, 1] along evenly spaced anchor colours (linear in RGB)."""
    t = min(1.0, max(0.0, t))
    position = t * (len(anchors) - 1)
    low = min(int(position), len(anchors) - 2)
    frac = position - low
    a, b = _hex_to_rgb(anchors[low]), _hex_to_rgb(anchors[low + 1])
    r, g, bl = (round(x + (y - x) * frac) for x, y in zip(a, b))
    return f"#{r:02x}{g:02x}{bl:02x}"


def text_color(background: str) -> str:
    """Black or white, whichever reads better on `background` (relative luminance, WCAG formula)."""
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _hex_to_rgb(background))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if luminance > 0.179 else "#ffffff"


class ColorScale:
    """Maps numbers to colours. `kind="auto"` picks diverging (centred on 0) when any value is negative.

    Sequential: vmin..vmax -> light..dark blue. Diverging: -m..0..+m -> blue..white..red, m = max |value|.
    None / NaN values get no colour (None).
    """

    def __init__(self, values: Iterable[object], kind: str = "auto",
                 vmin: float | None = None, vmax: float | None = None) -> None:
        if kind not in SCALES:
            raise ValueError(f"scale: must be one of {list(SCALES)}, got {kind!r}")
        finite = [v for v in (finite_or_none(x) for x in values) if v is not None]
        if kind == "auto":
            kind = "diverging" if any(v < 0 for v in finite) else "sequential"
        self.kind = kind
        if kind == "diverging":
            m = max((abs(v) for v in finite), default=0.0)
            for bound in (vmin, vmax):
                if bound is not None:
                    m = max(m, abs(bound))
            self.vmin, self.vmax = -m, m
        else:
            self.vmin = min(finite, default=0.0) if vmin is None else float(vmin)
            self.vmax = max(finite, default=0.0) if vmax is None else float(vmax)
        if self.vmax < self.vmin:
            raise ValueError(f"vmin/vmax: vmin ({self.vmin}) must not exceed vmax ({self.vmax})")

    @property
    def anchors(self) -> tuple[str, ...]:
        return DIVERGING if self.kind == "diverging" else SEQUENTIAL

    def __call__(self, value: object) -> str | None:
        v = finite_or_none(value)
        if v is None:
            return None
        span = self.vmax - self.vmin
        t = 0.5 if span == 0 else (v - self.vmin) / span
        if span == 0 and self.kind == "sequential":
            t = 1.0 if v != 0 else 0.0
        return _interpolate(self.anchors, t)

    def gradient_css(self) -> str:
        """A CSS linear-gradient through the scale's anchors (for legends)."""
        return f"linear-gradient(to right, {', '.join(self.anchors)})"

    def legend_html(self, label: str) -> str:
        """A small legend: label, low value, gradient bar, high value."""
        return (
            f'<div class="wb-legend"><span class="wb-legend-label">{escape(label)}</span>'
            f'<span>{escape(format_number(self.vmin))}</span>'
            f'<span class="wb-legend-bar" style="background:{self.gradient_css()}"></span>'
            f'<span>{escape(format_number(self.vmax))}</span></div>'
        )


def colored_style(color: str | None) -> str:
    """Inline style for a coloured cell (inline so it survives HTML sanitizers that drop <style>)."""
    if color is None:
        return ""
    return f' style="background-color:{color};color:{text_color(color)}"'


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The contents of widgets/workbench.css (shared by the live widgets and the static HTML)."""
    from workbench.resources import resource_dir

    return (resource_dir("widgets") / "workbench.css").read_text(encoding="utf-8")


@cache
def widget_source(filename: str) -> str:
    """The contents of one ES module in widgets/ (read into the widget's `_esm` trait: nothing is fetched)."""
    from workbench.resources import resource_dir

    path = resource_dir("widgets") / filename
    if not path.is_file():
        raise FileNotFoundError(f"widget front-end {filename!r} not found in {path.parent}")
    return path.read_text(encoding="utf-8")


def page(kind: str, body: str, *, style: bool = True) -> str:
    """Wrap a view's body into a self-contained block: a root div with a stable id and (unless nested in
    another page, `style=False`) the inline stylesheet."""
    root = stable_id(kind, body)
    sheet = f"<style>{stylesheet()}</style>" if style else ""
    return (f'<div class="wb-view wb-{escape(kind)}" id="{root}" data-wb-kind="{escape(kind)}">'
            f"{sheet}{body}</div>")
