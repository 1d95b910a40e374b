"""Line and bar plots on matplotlib (object API, no pyplot state), wrapped as a `Plot` view: a static PNG
embedded as a data URL plus the plotted numbers in a collapsible table, and a text summary."""
from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from workbench.views.base import View
from workbench.views.html import escape, format_number


def _numbers(values: Sequence[float], name: str) -> list[float]:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: must be a sequence of numbers ({err})") from None
    if array.ndim != 1:
        raise ValueError(f"{name}: must be 1-D, got shape {tuple(array.shape)}")
    return array.tolist()


class Plot(View):
    """A matplotlib figure plus the data it shows (`x` labels and named `series`)."""

    kind = "plot"

    def __init__(self, figure: Figure, x: Sequence[object], series: Mapping[str, Sequence[float]],
                 title: str = "", style: str = "line") -> None:
        self.figure, self.x, self.series, self.title, self.style = figure, list(x), dict(series), title, style

    def png(self, dpi: int = 100) -> bytes:
        """The figure as PNG bytes (no timestamp in the metadata, so the bytes are reproducible)."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
        return buffer.getvalue()

    def save(self, path: str) -> None:
        self.figure.savefig(path, metadata={"Software": None} if str(path).endswith(".png") else None)

    def _repr_png_(self) -> bytes:
        return self.png()

    def html_body(self) -> str:
        data = base64.b64encode(self.png()).decode("ascii")
        head = "".join(f"<th>{escape(name)}</th>" for name in ["x", *self.series])
        rows = "".join(
            "<tr>" + f"<td>{escape(format_number(x))}</td>"
            + "".join(f'<td class="wb-num">{escape(format_number(ys[i]))}</td>' for ys in self.series.values())
            + "</tr>" for i, x in enumerate(self.x))
        return (f'<div class="wb-plot"><img alt="{escape(self.title or self.style + " plot")}" '
                f'src="data:image/png;base64,{data}"/><details><summary>data</summary>'
                f'<table class="wb-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
                f"</details></div>")

    def to_text(self) -> str:
        lines = [f"Plot({self.style}{': ' + self.title if self.title else ''}, {len(self.x)} points)"]
        for name, ys in self.series.items():
            finite = [y for y in ys if np.isfinite(y)]
            span = f"{format_number(min(finite))}..{format_number(max(finite))}" if finite else "no finite values"
            lines.append(f"  {name}: {span}")
        return "\n".join(lines)


def _series(series: Mapping[str, Sequence[float]] | Sequence[float], n: int, name: str) -> dict[str, list[float]]:
    if not isinstance(series, Mapping):
        series = {name: series}
    if not series:
        raise ValueError(f"{name}: needs at least one series")
    out = {}
    for label, ys in series.items():
        ys = _numbers(ys, f"{name}[{label!r}]")
        if len(ys) != n:
            raise ValueError(f"{name}[{label!r}]: expected {n} values (one per x), got {len(ys)}")
        out[str(label)] = ys
    return out


def _figure(title: str, xlabel: str, ylabel: str, size: tuple[float, float]) -> tuple[Figure, object]:
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    return figure, axes


def line_plot(x: Sequence[float], series: Mapping[str, Sequence[float]] | Sequence[float], *, xlabel: str = "",
              ylabel: str = "", title: str = "", logx: bool = False, logy: bool = False,
              size: tuple[float, float] = (5.5, 3.5)) -> Plot:
    """One line per named series over shared x values."""
    xs = _numbers(x, "x")
    data = _series(series, len(xs), "series")
    figure, axes = _figure(title, xlabel, ylabel, size)
    for label, ys in data.items():
        axes.plot(xs, ys, marker="o", markersize=3, label=label)
    if logx:
        axes.set_xscale("log")
    if logy:
        axes.set_yscale("log")
    if len(data) > 1:
        axes.legend()
    return Plot(figure, xs, data, title, "line")


def bar_plot(categories: Sequence[object], values: Mapping[str, Sequence[float]] | Sequence[float], *,
             xlabel: str = "", ylabel: str = "", title: str = "", size: tuple[float, float] = (5.5, 3.5)) -> Plot:
    """Bars per category; several named series give grouped bars."""
    labels = [str(c) for c in categories]
    data = _series(values, len(labels), "values")
    figure, axes = _figure(title, xlabel, ylabel, size)
    width = 0.8 / len(data)
    positions = np.arange(len(labels))
    for k, (label, ys) in enumerate(data.items()):
        axes.bar(positions + (k - (len(data) - 1) / 2) * width, ys, width, label=label)
    axes.set_xticks(positions, labels)
    if len(data) > 1:
        axes.legend()
    return Plot(figure, labels, data, title, "bar")
