import base64
import math
from dataclasses import dataclass

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook, new_output

from workbench.experiments import (
    SCRAP_MIMETYPE,
    read_figure_scraps,
    read_scraps,
    run_notebook,
    scrap,
    to_jsonable,
)
from workbench.experiments.scraps import PNG_SIGNATURE, figure_png

# ---- JSON-safety ---------------------------------------------------------------------------------------------

def test_to_jsonable_converts_numpy_torch_tuples_and_results():
    @dataclass
    class Point:
        x: int
        y: float

    class Result:
        def to_dict(self):
            return {"a": (1, 2)}

    value = {"np_int": np.int64(3), "np_float": np.float32(0.5), "np_bool": np.bool_(True),
             "array": np.arange(3), "tensor": torch.tensor([[1, 2]]), "tuple": (1, "a"),
             "point": Point(1, 2.5), "result": Result()}
    assert to_jsonable(value) == {"np_int": 3, "np_float": 0.5, "np_bool": True, "array": [0, 1, 2],
                                  "tensor": [[1, 2]], "tuple": [1, "a"], "point": {"x": 1, "y": 2.5},
                                  "result": {"a": [1, 2]}}
    assert type(to_jsonable(np.int64(3))) is int


@pytest.mark.parametrize("bad, message", [
    (float("nan"), "non-finite"),
    ({"a": [1, math.inf]}, r"\['a'\]\[1\].*non-finite"),
    ({1: "x"}, "non-string key"),
    (object(), "not JSON-safe"),
    ({1, 2}, "not JSON-safe"),
])
def test_to_jsonable_refuses_what_json_cannot_hold(bad, message):
    with pytest.raises(ValueError, match=message):
        to_jsonable(bad)


def test_scrap_checks_name_and_value_and_prints_outside_a_notebook(capsys):
    with pytest.raises(ValueError, match="scrap name"):
        scrap("", 1)
    with pytest.raises(ValueError, match="scrap 'loss'.*non-finite"):
        scrap("loss", float("nan"))
    assert capsys.readouterr().out == ""  # nothing was shown for the refused scraps
    assert scrap("n", np.int64(4)) == 4
    assert capsys.readouterr().out.strip() == "scrap n = 4"


def test_figure_png_refuses_non_png_bytes_and_other_objects():
    with pytest.raises(ValueError, match="not a PNG"):
        figure_png(b"GIF89a....")
    with pytest.raises(ValueError, match="matplotlib Figure or PNG bytes"):
        figure_png("plot.png")


# ---- reading back from a notebook document --------------------------------------------------------------------

def _display(payload, **extra):
    return new_output("display_data", data={SCRAP_MIMETYPE: payload, "text/plain": "x", **extra})


def test_read_scraps_last_value_wins_and_other_outputs_are_ignored(tmp_path):
    png = PNG_SIGNATURE + b"rest-of-file"
    nb = new_notebook(cells=[
        new_code_cell("", outputs=[_display({"name": "a", "kind": "value", "value": 1}),
                                   new_output("stream", name="stdout", text="a = 5\n"),
                                   new_output("display_data", data={"text/plain": "not a scrap"})]),
        new_code_cell("", outputs=[_display({"name": "b", "kind": "value", "value": {"k": [1, 2]}}),
                                   _display({"name": "fig", "kind": "figure", "format": "png"},
                                            **{"image/png": base64.b64encode(png).decode()})]),
        new_code_cell("", outputs=[new_output("execute_result", execution_count=3,
                                              data={SCRAP_MIMETYPE: {"name": "a", "kind": "value", "value": 2},
                                                    "text/plain": "2"})]),
    ])
    path = tmp_path / "doc.ipynb"
    nbformat.write(nb, path)
    assert read_scraps(path) == {"b": {"k": [1, 2]}, "a": 2}
    assert list(read_scraps(path)) == ["b", "a"]  # order of the winning records
    assert read_figure_scraps(path) == {"fig": png}


def test_read_scraps_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such notebook"):
        read_scraps(tmp_path / "nope.ipynb")


# ---- round trip through a real papermill execution ------------------------------------------------------------

def test_scraps_round_trip_through_papermill(notebook_factory, tmp_path):
    raw_png = PNG_SIGNATURE + b"\x00\x00\x00\rIHDR" + bytes(range(40))
    nb = notebook_factory(
        "scraps.ipynb", "n = 3",
        "import numpy as np\nfrom workbench.experiments import scrap, scrap_figure\n"
        "scrap('count', n)\nscrap('ratio', n / 4)\nscrap('word', 'héllo')\n"
        "scrap('nested', {'ids': np.arange(n), 'pair': (1, None)})\nscrap('count', n * 10)",
        "import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(2, 1))\nax.plot([0, 1], [1, 0])\nscrap_figure('line', fig, dpi=40)\n"
        f"scrap_figure('raw', {raw_png!r})\nprint(len(plt.get_fignums()))",
    )
    result = run_notebook(nb, {"n": 5}, runs_dir=tmp_path / "runs", progress=False)
    assert result.ok, result.error
    expected = {"count": 50, "ratio": 1.25, "word": "héllo", "nested": {"ids": [0, 1, 2, 3, 4], "pair": [1, None]}}
    assert read_scraps(result.output_path) == expected
    assert result.scraps == expected
    figures = read_figure_scraps(result.output_path)
    assert set(figures) == {"line", "raw"}
    assert figures["raw"] == raw_png
    assert figures["line"].startswith(PNG_SIGNATURE)
    # every scrap is visible as text too, and the figure was closed after recording (no second display)
    out = nbformat.read(result.output_path, as_version=4)
    texts = [o["data"]["text/plain"] for c in out.cells for o in c.get("outputs", []) if "data" in o]
    assert "scrap count = 50" in texts and 'scrap word = "héllo"' in texts
    assert any(o.get("text") == "0\n" for c in out.cells for o in c.get("outputs", []))
