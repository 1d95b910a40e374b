"""Table: records from several sources, sorting (hand-computed orders), selection, static HTML."""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from workbench.views import Table

from .helpers import URL, frontend_update

ROWS = [{"method": "h2o", "budget": 64, "error": 0.25},
        {"method": "snapkv", "budget": 32, "error": float("nan")},
        {"method": "full", "budget": 128, "error": 0.0}]


@dataclass
class Row:
    name: str
    value: float

    def to_dict(self):
        return {"name": self.name, "value": self.value}


def test_records_from_dicts_dataframes_and_dataclasses():
    assert Table(ROWS).rows == Table(pd.DataFrame(ROWS)).rows
    assert Table(ROWS).rows[1] == ["snapkv", 32, None]  # NaN is not JSON
    assert Table([Row("a", np.float32(0.5))]).rows == [["a", 0.5]]
    assert Table([{"a": 1}, {"b": 2}]).columns == ["a", "b"]
    assert Table(ROWS, columns=["budget"]).rows == [[64], [32], [128]]
    with pytest.raises(ValueError, match="rows: item 0 must be a dict"):
        Table([[1, 2]])


def test_sorting_from_the_front_end():
    t = Table(ROWS)
    frontend_update(t, sort_by="budget", ascending=True)
    assert t.order == [1, 0, 2]
    frontend_update(t, ascending=False)
    assert t.order == [2, 0, 1]
    frontend_update(t, sort_by="error", ascending=True)
    assert t.order == [2, 0, 1]  # 0.0, 0.25, then the empty cell
    frontend_update(t, ascending=False)
    assert t.order == [0, 2, 1]  # the empty cell stays last
    assert [r["method"] for r in t.records()] == ["h2o", "full", "snapkv"]
    frontend_update(t, sort_by="nope")
    assert t.sort_by == "error"
    with pytest.raises(ValueError, match="sort_by: must be '' .*'method', 'budget', 'error'"):
        t.sort("nope")


def test_selection_indexes_the_rows_as_given():
    t = Table(ROWS).sort("budget")
    frontend_update(t, selected=2)
    assert t.selected == 2 and t.records()[-1]["method"] == "full"
    with pytest.raises(ValueError, match="selected"):
        t.selected = 3


def test_html_follows_the_sort_order():
    t = Table(ROWS, title="results")
    assert [s.split('"')[0] for s in t.html.split('data-index="')[1:]] == ["0", "1", "2"]
    t.sort("budget", ascending=False)
    assert [s.split('"')[0] for s in t.html.split('data-index="')[1:]] == ["2", "0", "1"]
    html = t.to_html()
    assert html == Table(ROWS, title="results").sort("budget", ascending=False).to_html()
    assert not URL.search(html) and "<script" not in html
    assert '<td class="wb-num">0.25</td>' in html and "<td>snapkv</td>" in html and "budget \u25bc" in html


def test_text_repr():
    assert repr(Table(ROWS[:2], title="t")) == ("t\nmethod  budget  error\nh2o     64      0.25\nsnapkv  32")
