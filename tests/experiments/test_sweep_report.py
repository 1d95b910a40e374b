"""The sweep table and metric plots, from hand-written records (no notebook is executed here)."""
import json

import pandas as pd

from workbench.experiments.sweep_report import (
    metric_series,
    plot_metric,
    plottable_metrics,
    results_table,
    write_table,
)


def _record(run_id, a_value, b_value, status="ok", **scraps):
    return {"run_id": run_id, "parameters": {"a": a_value, "b": b_value, "seed": 0}, "status": status, "seconds": 1.5,
            "error": None if status == "ok" else "boom", "output": f"notebooks/{run_id}.ipynb", "scraps": scraps}


RECORDS = [
    _record("r1", 1, "x", loss=0.5, a="shadow", hist=[1, 2]),
    _record("r2", 2, "x", loss=0.25, a="shadow", hist=[3]),
    _record("r3", 1, "y", loss=0.75, a="shadow", note=3),
    _record("r4", 2, "y", status="failed", note="text"),
]
GRID = {"a": [1, 2], "b": ["x", "y"]}


def _values(column):
    return [None if pd.isna(v) else v for v in column.tolist()]


def test_one_row_per_run_with_parameters_status_and_scraps(tmp_path):
    table = results_table(RECORDS, ["a", "b"], ["seed"])
    assert list(table.columns) == ["run_id", "a", "b", "seed", "status", "seconds", "error", "output",
                                   "loss", "scrap:a", "hist", "note"]
    assert table["run_id"].tolist() == ["r1", "r2", "r3", "r4"]
    assert table["a"].tolist() == [1, 2, 1, 2]  # the parameter keeps its name; the scrap 'a' is renamed
    assert _values(table["scrap:a"]) == ["shadow", "shadow", "shadow", None]
    assert _values(table["hist"]) == ["[1, 2]", "[3]", None, None]  # lists as JSON text
    assert _values(table["note"]) == [None, None, "3", "text"]  # a number mixed with text becomes text
    assert table["status"].tolist() == ["ok", "ok", "ok", "failed"]
    parquet, csv = write_table(table, tmp_path)
    back = pd.read_parquet(parquet)
    assert back["loss"].tolist()[:3] == [0.5, 0.25, 0.75] and pd.isna(back["loss"].tolist()[3])
    assert back["run_id"].tolist() == ["r1", "r2", "r3", "r4"]
    assert pd.read_csv(csv)["b"].tolist() == ["x", "x", "y", "y"]
    assert not list(tmp_path.glob(".*tmp"))


def test_metric_series_against_the_first_grid_key():
    table = results_table(RECORDS, ["a", "b"], ["seed"])
    assert metric_series(table, "loss", GRID) == {"b=x": [(1, 0.5), (2, 0.25)], "b=y": [(1, 0.75)]}  # failed r4 left out
    # a scrap shadowed by a parameter name is found under its scrap column; text values are not plotted
    assert metric_series(table, "a", GRID) == {}
    # non-numeric first key: x is the value's position in the grid
    by_b = {"b": ["x", "y"], "a": [1, 2]}
    assert metric_series(table, "loss", by_b) == {"a=1": [(0, 0.5), (1, 0.75)], "a=2": [(0, 0.25)]}
    assert plottable_metrics(table, ["loss", "note", "hist", "missing"]) == (["loss"], ["note", "hist", "missing"])


def test_plot_is_a_png(tmp_path):
    table = results_table(RECORDS, ["a", "b"], ["seed"])
    path = plot_metric(table, "loss", GRID, tmp_path / "plot_loss.png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    json.dumps(metric_series(table, "loss", GRID))  # plain values
