"""The grid of a sweep: parse `key=v1,v2` options, check every value against the notebook, list the runs.

Values typed on the command line are read like papermill's `-p` (see `parameters.RawValue`): YAML/JSON
literals (`8`, `0.5`, `true`, `[1, 2]`) unless the parameter's default is a string. Every value is checked
against the notebook's `parameters` cell before any run starts, so a typo in a key or a wrong type fails
at once instead of after hours of runs with the defaults.

A run is one combination of grid values plus the fixed parameters; its id is a stable hash of those
parameters (sorted JSON), so the same combination always maps to the same record in the sweep folder.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .parameters import notebook_parameters, resolve_parameters
from .scraps import to_jsonable


@dataclass(frozen=True)
class Run:
    """One point of the grid: its id and the full parameters it runs with (grid values + fixed)."""

    run_id: str
    parameters: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "parameters": to_jsonable(self.parameters)}


def run_id(parameters: dict[str, Any]) -> str:
    """Stable 12-hex-digit id of a parameter dict (sha1 of its sorted JSON)."""
    text = json.dumps(to_jsonable(parameters, "parameters"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def split_values(text: str) -> list[str]:
    """Split `v1,v2,...` on top-level commas (commas inside [..], {..} or quotes stay: `[1,2],[3,4]`)."""
    parts, depth, quote, current = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def parse_grid_option(option: str) -> tuple[str, list[str]]:
    """`key=v1,v2` -> ("key", ["v1", "v2"]) as raw text; ValueError for a missing `=`, key or value."""
    key, sep, values = option.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"--grid expects KEY=V1,V2,..., got {option!r}")
    parts = split_values(values)
    if any(not p.strip() for p in parts):
        raise ValueError(f"--grid {key}: empty value in {values!r}; give one or more comma-separated values")
    return key, parts


def check_grid(notebook: Path, grid: dict[str, list], fixed: dict[str, Any]) -> tuple[dict[str, list], dict[str, Any]]:
    """Validate grid and fixed parameters against the notebook; return both with typed values.

    Raises ValueError for: no `parameters` cell, an empty grid, a key with no values or repeated values,
    a key both in the grid and fixed, an unknown key (the message lists the notebook's parameters), or a
    value whose type differs from its default's.
    """
    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty dict of parameter name -> list of values")
    if not isinstance(fixed, dict):
        raise ValueError(  # noqa: TRY004  (project rule: bad input is a ValueError)
            f"fixed must be a dict of parameter name -> value, got {type(fixed).__name__}")
    declared = notebook_parameters(notebook)  # raises when there is no parameters cell
    unknown = [k for k in [*grid, *fixed] if k not in declared]
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for {notebook}; "
            f"the notebook's parameters are: {', '.join(declared) or '(none declared)'}"
        )
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ValueError(f"parameter(s) {', '.join(map(repr, both))} given both in the grid and as fixed values")
    typed: dict[str, list] = {}
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"grid[{key!r}] must be a list of values, got {type(values).__name__}")
        values = list(values)
        if not values:
            raise ValueError(f"grid[{key!r}] is empty; give at least one value")
        typed[key] = [resolve_parameters(notebook, {key: v})[key] for v in values]
        ids = [json.dumps(to_jsonable(v, f"grid[{key!r}]"), sort_keys=True) for v in typed[key]]
        if len(set(ids)) != len(ids):
            raise ValueError(f"grid[{key!r}] repeats a value: {typed[key]}")
    fixed = resolve_parameters(notebook, dict(fixed))
    to_jsonable(fixed, "fixed")
    return typed, fixed


def expand(grid: dict[str, list], fixed: dict[str, Any]) -> list[Run]:
    """Every combination of the grid (first key varies slowest), each merged with the fixed parameters."""
    keys = list(grid)
    runs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = {**fixed, **dict(zip(keys, combo))}
        runs.append(Run(run_id(params), params))
    return runs
