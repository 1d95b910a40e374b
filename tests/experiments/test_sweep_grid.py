"""Grid parsing, typing and run ids of `workbench sweep` (no notebook is executed here)."""
import hashlib
import json

import pytest

from workbench.experiments.parameters import RawValue
from workbench.experiments.sweep_grid import (
    check_grid,
    expand,
    parse_grid_option,
    run_id,
    split_values,
)


def test_split_values_keeps_commas_inside_brackets_and_quotes():
    assert split_values("1,2,3") == ["1", "2", "3"]
    assert split_values("[1,2],[3, 4],{a: 1, b: 2}") == ["[1,2]", "[3, 4]", "{a: 1, b: 2}"]
    assert split_values("'a,b',c") == ["'a,b'", "c"]
    assert split_values("x") == ["x"]


@pytest.mark.parametrize("option, message", [
    ("lr", "expects KEY=V1,V2"),
    ("=1,2", "expects KEY=V1,V2"),
    ("lr=", "empty value"),
    ("lr=1,,2", "empty value"),
    ("lr=1, ", "empty value"),
])
def test_bad_grid_options(option, message):
    with pytest.raises(ValueError, match=message):
        parse_grid_option(option)


def test_values_are_typed_against_the_defaults(notebook_factory):
    nb = notebook_factory("p.ipynb", "n = 1\nscale = 0.5\nname = 'x'\nflag = False\nsizes = [1]", "n")
    grid, fixed = check_grid(nb, {"n": [RawValue("2"), RawValue("3")], "scale": [RawValue("1e-3"), RawValue("2")],
                                  "name": [RawValue("123"), RawValue("true")], "sizes": [RawValue("[1,2]")]},
                             {"flag": RawValue("true")})
    assert grid == {"n": [2, 3], "scale": [0.001, 2], "name": ["123", "true"], "sizes": [[1, 2]]}
    assert fixed == {"flag": True}
    assert type(grid["n"][0]) is int and type(grid["scale"][0]) is float


def test_expand_all_combinations_with_stable_ids(notebook_factory):
    runs = expand({"a": [1, 2], "b": ["x", "y", "z"]}, {"c": 0.5})
    assert [r.parameters for r in runs] == [
        {"c": 0.5, "a": a, "b": b} for a in (1, 2) for b in ("x", "y", "z")]
    assert len({r.run_id for r in runs}) == 6
    # the id is the sha1 of the sorted JSON of the parameters, whatever their order
    expected = hashlib.sha1(json.dumps({"a": 1, "b": "x", "c": 0.5}, sort_keys=True).encode()).hexdigest()[:12]
    assert runs[0].run_id == expected == run_id({"b": "x", "c": 0.5, "a": 1})
