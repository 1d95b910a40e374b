"""Heatmap: input checks, linked selection (row -> top columns), links to token strips, static HTML."""
import math

import numpy as np
import pytest
import torch

from workbench.views import Heatmap, TokenStrip
from workbench.views.heatmap import top_columns

from .helpers import URL, frontend_update

VALUES = [[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [math.nan, 0.3, 0.9]]


def heatmap(**options):
    return Heatmap(VALUES, row_labels=["a", "b", "c"], col_labels=["x", "y", "z"], **options)


def test_accepts_lists_numpy_and_torch_alike():
    h1, h2 = heatmap(), Heatmap(np.array(VALUES), row_labels="abc", col_labels="xyz")
    h3 = Heatmap(torch.tensor(VALUES, requires_grad=True) * 1, row_labels="abc", col_labels="xyz")
    assert h1.values == h2.values
    assert np.allclose(np.array(h3.values[0], dtype=float), VALUES[0], atol=1e-7)
    assert h1.values[2][0] is None and h1.shape == (3, 3)


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="values: must be a non-empty 2-D array"):
        Heatmap([1, 2, 3])
    with pytest.raises(ValueError, match="row_labels: expected 3 labels, got 2"):
        Heatmap(VALUES, row_labels=["a", "b"])
    with pytest.raises(ValueError, match="top_k: must be in"):
        heatmap(top_k=4)
    with pytest.raises(ValueError, match="values: at most"):
        Heatmap(np.zeros((300, 300)))
    with pytest.raises(ValueError, match="values: must be a 2-D array of numbers"):
        Heatmap([["a", "b"]])


def test_top_columns_against_numpy_argsort():
    rng = np.random.default_rng(0)
    for _ in range(50):
        row = rng.integers(0, 5, size=8).astype(float)  # many ties
        expected = list(np.argsort(-row, kind="stable")[:3])
        assert top_columns(row.tolist(), 3) == expected
    assert top_columns([None, 1.0, None], 2) == [1]


def test_row_click_highlights_its_largest_columns():
    h = heatmap(top_k=2)
    frontend_update(h, selected_row=0)
    assert h.selected_row == 0 and h.highlighted_cols == [1, 2]
    frontend_update(h, selected_row=2)
    assert h.highlighted_cols == [2, 1]  # the NaN cell never wins
    frontend_update(h, selected_row=-1)
    assert h.highlighted_cols == []
    frontend_update(h, selected_col=1)
    assert h.selected_col == 1
    frontend_update(h, selected_row=7)
    assert h.selected_row == -1
    with pytest.raises(ValueError, match="selected_row: must be -1"):
        h.selected_row = 3


def test_links_to_token_strips():
    h = heatmap()
    inputs = TokenStrip.from_pieces(["x", "y", "z"])
    outputs = TokenStrip.from_pieces(["a", "b", "c"])
    h.link_columns(inputs)
    h.link_rows(outputs)
    frontend_update(outputs, selected=1)  # click an output token ...
    assert h.selected_row == 1 and inputs.selected == 0  # ... its row's largest input is selected
    frontend_update(outputs, selected=-1)
    assert inputs.selected == -1
    with pytest.raises(ValueError, match="strip: needs 3 tokens"):
        h.link_columns(TokenStrip.from_pieces(["x"]))


def test_new_values_keep_the_selection_valid():
    h = heatmap()
    h.selected_row = 2
    h.values = [[1.0, 2.0, 3.0]]
    assert h.selected_row == -1 and h.highlighted_cols == []


def test_static_html():
    h, twin = heatmap(title="attention", value_label="weight"), heatmap(title="attention", value_label="weight")
    h.selected_row = twin.selected_row = 1
    html = h.to_html()
    assert html == twin.to_html()
    assert not URL.search(html) and "<script" not in html
    assert html.count('class="wb-hm-cell') == 9
    assert 'title="b -&gt; x: weight 0.5"' in html
    assert 'title="c -&gt; x: weight "' in html  # the NaN cell: no value, no colour
    assert '<tr data-row="1" class="wb-selected">' in html
    assert 'class="wb-hm-cell wb-highlight" data-row="1" data-col="0"' in html


def test_text_repr():
    h = heatmap()
    h.selected_row = 0
    assert repr(h) == "Heatmap(3x3, value 0.1..0.9)\nrow 'a' -> top: y"
