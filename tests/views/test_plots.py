"""Plot helpers: data checks, deterministic self-contained HTML, readable PNG, text summary."""
import base64
import io

import matplotlib.image
import pytest

from workbench.views import bar_plot, line_plot

from .helpers import URL


def test_line_plot_html_is_deterministic_and_carries_the_data():
    make = lambda: line_plot([1, 2, 4], {"h2o": [0.5, 0.25, 0.125], "full": [0, 0, 0]}, xlabel="budget",
                             title="error vs budget")
    html = make().to_html()
    assert html == make().to_html()
    assert not URL.search(html) and "<script" not in html
    assert "<td>4</td>" in html and '<td class="wb-num">0.125</td>' in html and "<th>h2o</th>" in html
    png = base64.b64decode(html.split("data:image/png;base64,")[1].split('"')[0])
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_bar_plot_grouped_and_single():
    plot = bar_plot(["a", "b"], {"x": [1, 2], "y": [3, 4]}, title="bars")
    assert plot.style == "bar" and plot.x == ["a", "b"]
    assert repr(plot) == "Plot(bar: bars, 2 points)\n  x: 1..2\n  y: 3..4"
    assert repr(bar_plot(["a"], [5.0])) == "Plot(bar, 1 points)\n  values: 5..5"
    assert plot._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_series_are_rejected():
    with pytest.raises(ValueError, match=r"series\['a'\]: expected 3 values"):
        line_plot([1, 2, 3], {"a": [1, 2]})
    with pytest.raises(ValueError, match="x: must be 1-D"):
        line_plot([[1, 2]], [1, 2])
    with pytest.raises(ValueError, match="values: needs at least one series"):
        bar_plot(["a"], {})
