"""Colour scales, escaping, ids and the page wrapper (expected values worked out by hand)."""
import math

import pytest

from workbench.resources import resource_dir
from workbench.views.html import DIVERGING, SEQUENTIAL, ColorScale, escape, format_number, page, stable_id, text_color

from .helpers import URL


def test_escape_covers_markup_and_quotes():
    assert escape('<b a="1">&\'') == "&lt;b a=&quot;1&quot;&gt;&amp;&#x27;"


def test_stable_id_is_deterministic_and_content_addressed():
    assert stable_id("x", [1, 2]) == stable_id("x", [1, 2])
    assert stable_id("x", [1, 2]) != stable_id("x", [2, 1])
    assert stable_id("x", 1).startswith("wb-x-") and len(stable_id("x", 1)) == len("wb-x-") + 10


@pytest.mark.parametrize("value,text", [(None, ""), (3, "3"), (True, "True"), (0.123456, "0.1235"),
                                        (1234567.0, "1.235e+06"), (math.nan, "nan"), ("ab", "ab")])
def test_format_number(value, text):
    assert format_number(value) == text


def test_sequential_scale_endpoints_and_interpolation():
    scale = ColorScale([0.0, 1.0, None, math.nan])
    assert scale.kind == "sequential"
    assert scale(0.0) == SEQUENTIAL[0] and scale(1.0) == SEQUENTIAL[-1]
    assert scale(0.25) == SEQUENTIAL[1]  # anchors are evenly spaced: 0, .25, .5, .75, 1
    # a quarter of the way from #f7fbff to #c6dbef: 247-49/4=234.75, 251-32/4=243, 255-16/4=251
    assert scale(0.0625) == "#ebf3fb"
    assert scale(None) is None and scale(math.nan) is None
    assert scale(-5) == SEQUENTIAL[0] and scale(5) == SEQUENTIAL[-1]  # clipped


def test_diverging_scale_is_centred_on_zero():
    scale = ColorScale([-1.0, 3.0])
    assert scale.kind == "diverging" and (scale.vmin, scale.vmax) == (-3.0, 3.0)
    assert scale(0.0) == DIVERGING[2] and scale(3.0) == DIVERGING[-1] and scale(-3.0) == DIVERGING[0]


def test_scale_rejects_unknown_kind_and_inverted_bounds():
    with pytest.raises(ValueError, match="scale: must be one of"):
        ColorScale([1], "rainbow")
    with pytest.raises(ValueError, match="vmin"):
        ColorScale([1], "sequential", vmin=2, vmax=1)


def test_text_color_contrast():
    assert text_color("#ffffff") == "#000000"
    assert text_color("#08306b") == "#ffffff"


def test_page_is_self_contained_and_deterministic():
    html = page("demo", "<p>data 42</p>")
    assert html == page("demo", "<p>data 42</p>")
    assert "<p>data 42</p>" in html
    assert (resource_dir("widgets") / "workbench.css").read_text() in html
    assert not URL.search(html) and "<script" not in html
    assert page("demo", "x", style=False).count("<style>") == 0
    assert "<" not in (resource_dir("widgets") / "workbench.css").read_text()  # cannot close its style block
