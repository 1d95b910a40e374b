"""Scraps: named results a notebook records in its own outputs, read back from the executed notebook.

A scrap is a display output carrying the project-owned mimetype `application/vnd.workbench.scrap+json`
with the payload `{"name": ..., "kind": "value", "value": ...}` next to a short `text/plain` line, so the
notebook shows what it recorded and the saved `.ipynb` keeps it as JSON. A figure scrap has
`{"name": ..., "kind": "figure", "format": "png"}` and stores the picture itself as the output's ordinary
`image/png` (base64), so Jupyter renders it and the tour index can embed it.

Reading back walks the cells in order; when a name is recorded more than once, the LAST value wins
(a notebook that refines a result in a later cell reports the refined one).
"""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

SCRAP_MIMETYPE = "application/vnd.workbench.scrap+json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_PREVIEW_CHARS = 200


def to_jsonable(value: Any, where: str = "value") -> Any:
    """Convert `value` to plain JSON types, or raise ValueError naming the offending part.

    Accepted: None, bool, int, finite float, str, lists/tuples, dicts with str keys, objects with a
    `to_dict()` (project results), dataclasses, NumPy scalars and arrays, PyTorch tensors, and paths.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}; JSON cannot represent non-finite floats")
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(  # noqa: TRY004  (project rule: bad input is a ValueError)
                    f"{where} has a non-string key {key!r}; JSON object keys must be str")
            out[key] = to_jsonable(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict(), where)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value), where)
    if hasattr(value, "tolist") and callable(value.tolist):  # NumPy scalars/arrays, torch tensors
        return to_jsonable(value.tolist(), where)
    raise ValueError(
        f"{where} has type {type(value).__name__}, which is not JSON-safe; use None, bool, int, float, str, "
        "list, dict with str keys, a NumPy/PyTorch value, or an object with to_dict()"
    )


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"scrap name must be a non-empty string, got {name!r}")
    return name


def _in_ipython_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _publish(bundle: dict[str, Any], fallback_text: str) -> None:
    if _in_ipython_kernel():
        from IPython.display import display

        display(bundle, raw=True)
    else:  # a plain script: there is no notebook to record into, so just say what it was
        print(fallback_text)


def scrap(name: str, value: Any) -> Any:
    """Record `value` under `name` in the running notebook's outputs; returns the JSON-safe value stored.

    The value must be JSON-safe (see `to_jsonable`); bad names or values raise ValueError before anything
    is displayed. Outside IPython it prints the text line instead (nothing to record into).
    """
    name = _check_name(name)
    stored = to_jsonable(value, f"scrap {name!r}")
    text = json.dumps(stored, ensure_ascii=False)
    if len(text) > _TEXT_PREVIEW_CHARS:
        text = text[: _TEXT_PREVIEW_CHARS - 3] + "..."
    line = f"scrap {name} = {text}"
    _publish({SCRAP_MIMETYPE: {"name": name, "kind": "value", "value": stored}, "text/plain": line}, line)
    return stored


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """PNG bytes of a matplotlib figure (or PNG bytes passed through after a signature check)."""
    if isinstance(fig, (bytes, bytearray)):
        if not bytes(fig).startswith(PNG_SIGNATURE):
            raise ValueError("fig: bytes given, but they are not a PNG image (bad signature)")
        return bytes(fig)
    if not hasattr(fig, "savefig"):
        raise ValueError(f"fig must be a matplotlib Figure or PNG bytes, got {type(fig).__name__}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def scrap_figure(name: str, fig: Any, dpi: int = 100, close: bool = True) -> bytes:
    """Record a figure under `name` as a PNG; the output shows the picture. Returns the PNG bytes.

    With `close=True` a pyplot-managed figure is closed afterwards, so the inline backend does not show it
    a second time at the end of the cell.
    """
    name = _check_name(name)
    png = figure_png(fig, dpi=dpi)
    bundle = {
        SCRAP_MIMETYPE: {"name": name, "kind": "figure", "format": "png"},
        "image/png": base64.b64encode(png).decode("ascii"),
        "text/plain": f"figure scrap {name} ({len(png)} bytes PNG)",
    }
    _publish(bundle, bundle["text/plain"])
    if close and hasattr(fig, "savefig"):
        import matplotlib.pyplot as plt

        plt.close(fig)
    return png


def _scrap_outputs(nb: Any):
    """Yield (cell_index, payload, output) for every scrap output, in notebook order."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") not in ("display_data", "execute_result"):
                continue
            payload = output.get("data", {}).get(SCRAP_MIMETYPE)
            if isinstance(payload, dict) and isinstance(payload.get("name"), str):
                yield index, payload, output


def _load(notebook: Any) -> Any:
    # nbformat is imported here, not at the top: `scrap()` runs inside every notebook kernel and importing
    # nbformat (jsonschema) costs seconds.
    import nbformat

    if isinstance(notebook, nbformat.NotebookNode):
        return notebook
    path = Path(notebook)
    if not path.is_file():
        raise FileNotFoundError(f"notebook_path: no such notebook file: {path}")
    return nbformat.read(path, as_version=4)


def read_scraps(notebook_path: str | Path | Any) -> dict[str, Any]:
    """Value scraps of an executed notebook as {name: value}; the last value recorded for a name wins."""
    scraps: dict[str, Any] = {}
    for _, payload, _ in _scrap_outputs(_load(notebook_path)):
        if payload.get("kind", "value") == "value":
            scraps.pop(payload["name"], None)  # re-insert so the dict order follows the winning record
            scraps[payload["name"]] = payload.get("value")
    return scraps


def read_figure_scraps(notebook_path: str | Path | Any) -> dict[str, bytes]:
    """Figure scraps of an executed notebook as {name: PNG bytes}; the last figure for a name wins."""
    figures: dict[str, bytes] = {}
    for _, payload, output in _scrap_outputs(_load(notebook_path)):
        if payload.get("kind") == "figure":
            encoded = output.get("data", {}).get("image/png", "")
            if isinstance(encoded, list):  # nbformat may split long strings into lines
                encoded = "".join(encoded)
            figures.pop(payload["name"], None)
            figures[payload["name"]] = base64.b64decode(encoded)
    return figures
