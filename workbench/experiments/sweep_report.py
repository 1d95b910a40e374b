"""The results of a sweep as one table (parquet + CSV) and one plot per requested metric.

One row per run: `run_id`, the parameters (grid keys first, then fixed ones), `status`, `seconds`,
`error`, `output` (the run's notebook, relative to the sweep folder), then every scrap a run recorded.
A scrap whose name equals one of those columns is stored as `scrap:<name>`. Lists and dicts (and
columns mixing text with numbers) are stored as JSON text so parquet has one type per column.

A metric plot draws the metric against the first grid key, one line per combination of the other grid
keys; failed runs and runs that did not record the metric are left out.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_META = ("run_id", "status", "seconds", "error", "output")


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, (list, dict)) else value


def _uniform(values: list[Any]) -> list[Any]:
    """Make a column parquet-safe: mixed text/number/bool columns become JSON text."""
    kinds = {"bool" if isinstance(v, bool) else "num" if isinstance(v, (int, float)) else type(v).__name__
             for v in values if v is not None}
    if len(kinds) <= 1:
        return values
    return [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]


def results_table(records: list[dict[str, Any]], grid_keys: list[str], fixed_keys: list[str]):
    """A pandas DataFrame with one row per record (in the order given)."""
    import pandas as pd

    param_keys = [*grid_keys, *[k for k in fixed_keys if k not in grid_keys]]
    taken = set(_META) | set(param_keys)
    scrap_cols: dict[str, str] = {}
    for record in records:
        for name in record.get("scraps", {}):
            scrap_cols.setdefault(name, f"scrap:{name}" if name in taken else name)
    columns = ["run_id", *param_keys, "status", "seconds", "error", "output", *scrap_cols.values()]
    data: dict[str, list[Any]] = {c: [] for c in columns}
    for record in records:
        params, scraps = record.get("parameters", {}), record.get("scraps", {})
        for key in param_keys:
            data[key].append(_cell(params.get(key)))
        for key in _META:
            data[key].append(record.get(key))
        for name, column in scrap_cols.items():
            data[column].append(_cell(scraps.get(name)))
    return pd.DataFrame({c: _uniform(v) for c, v in data.items()}, columns=columns)


def write_table(table, folder: Path) -> tuple[Path, Path]:
    """Write results.parquet and results.csv into `folder` (each atomically); return both paths."""
    from .sweep_store import atomic_write_bytes

    parquet, csv = folder / "results.parquet", folder / "results.csv"
    tmp = folder / ".results.parquet.tmp"
    table.to_parquet(tmp, index=False)
    tmp.replace(parquet)
    atomic_write_bytes(csv, table.to_csv(index=False).encode("utf-8"))
    return parquet, csv


def _is_number(value: Any) -> bool:
    """A real number (Python or NumPy), not a bool, not NaN."""
    import numbers

    if isinstance(value, bool) or type(value).__name__ == "bool_" or not isinstance(value, numbers.Real):
        return False
    import math

    return not math.isnan(value)


def _metric_column(table, metric: str) -> str:
    return f"scrap:{metric}" if f"scrap:{metric}" in table.columns else metric


def metric_series(table, metric: str, grid: dict[str, list]) -> dict[str, list[tuple[Any, float]]]:
    """{line label: [(x, y), ...] sorted by x} for `metric` against the first grid key.

    One line per combination of the other grid keys (label "k=v, ..."; the metric's name when the grid
    has one key); x is the first key's value, or its position in the grid when the values are not all
    numbers. Failed runs and runs without a number for the metric are left out.
    """
    keys = list(grid)
    x_key, others = keys[0], keys[1:]
    numeric_x = all(_is_number(v) for v in grid[x_key])
    column = _metric_column(table, metric)
    ok = table[table["status"] == "ok"]
    series: dict[str, list[tuple[Any, float]]] = {}
    for _, row in ok.iterrows():
        y = row[column] if column in ok.columns else None
        if not _is_number(y):
            continue
        x = row[x_key] if numeric_x else _position(grid[x_key], row[x_key])
        label = ", ".join(f"{k}={row[k]}" for k in others) or metric
        series.setdefault(label, []).append((x.item() if hasattr(x, "item") else x, float(y)))
    return {label: sorted(points) for label, points in series.items()}


def plot_metric(table, metric: str, grid: dict[str, list], path: Path) -> Path:
    """Save a PNG of `metric` against the first grid key, one line per combination of the other keys."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x_key = next(iter(grid))
    fig, ax = plt.subplots(figsize=(6, 4))
    series = metric_series(table, metric, grid)
    for label, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    if not all(_is_number(v) for v in grid[x_key]):
        ax.set_xticks(range(len(grid[x_key])), [str(v) for v in grid[x_key]])
    ax.set_xlabel(x_key)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {x_key}")
    if len(grid) > 1:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _position(values: list[Any], value: Any) -> int:
    as_text = [json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v for v in values]
    return as_text.index(value)


def plottable_metrics(table, metrics: list[str]) -> tuple[list[str], list[str]]:
    """Split `metrics` into those some ok run recorded as a number and those none did."""
    ok = table[table["status"] == "ok"]
    found, missing = [], []
    for metric in metrics:
        column = _metric_column(table, metric)
        values = ok[column].dropna().tolist() if column in ok.columns else []
        (found if any(_is_number(v) for v in values) else missing).append(metric)
    return found, missing
