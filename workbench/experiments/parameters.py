"""The parameters of a notebook: read from its cell tagged `parameters`, checked before anything runs.

This follows papermill's convention (the cell tagged `parameters` holds the defaults; papermill injects a
cell after it that overrides them). papermill itself only warns about unknown names and never checks
types, so a typo silently runs the defaults; here both are errors raised before execution.

The cell is parsed with `ast`: every top-level `name = value` or `name: type = value` is a parameter;
the default's type is known when its value is a literal (`ast.literal_eval`), otherwise any value is
accepted for it.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"
_UNKNOWN = object()  # default that is not a literal: its type is not checked


@dataclass(frozen=True)
class Parameter:
    """One notebook parameter: its name, default source text and (when literal) default value."""

    name: str
    source: str
    default: Any = _UNKNOWN

    @property
    def has_literal_default(self) -> bool:
        return self.default is not _UNKNOWN

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source}
        if self.has_literal_default:
            out["default"] = self.default
        return out


def _read(notebook: str | Path | Any) -> tuple[Any, str]:
    import nbformat  # here, not at the top: it costs seconds and the CLI imports this module to parse args

    if isinstance(notebook, nbformat.NotebookNode):
        return notebook, "<notebook>"
    path = Path(notebook)
    if not path.is_file():
        raise FileNotFoundError(f"notebook: no such notebook file: {path}")
    if path.suffix != ".ipynb":
        raise ValueError(f"notebook: expected a .ipynb file, got {path}")
    return nbformat.read(path, as_version=4), str(path)


def _strip_magics(source: str) -> str:
    """Blank out IPython magics and shell lines so `ast` can parse the rest (line numbers are kept)."""
    lines = source.splitlines()
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)


def notebook_parameters(notebook: str | Path | Any) -> dict[str, Parameter]:
    """The parameters declared in the cell tagged `parameters`, in order, as {name: Parameter}.

    Raises ValueError if the notebook has no such cell (or more than one), or the cell is not valid Python.
    """
    nb, where = _read(notebook)
    cells = [c for c in nb.cells if c.cell_type == "code" and PARAMETERS_TAG in c.metadata.get("tags", [])]
    if not cells:
        raise ValueError(
            f"{where} has no cell tagged {PARAMETERS_TAG!r}; tag the cell holding the defaults "
            "(Jupyter: View > Right sidebar > Property inspector > Cell tags) so parameters can be set"
        )
    if len(cells) > 1:
        raise ValueError(f"{where} has {len(cells)} cells tagged {PARAMETERS_TAG!r}; exactly one is allowed")
    source = _strip_magics(cells[0].source)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"{where}: the {PARAMETERS_TAG!r} cell is not valid Python: {exc}") from exc
    found: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        try:
            default = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError):
            default = _UNKNOWN
        for name in names:
            found.pop(name, None)
            found[name] = Parameter(name, ast.get_source_segment(source, value) or "", default)
    return found


def _type_name(value: Any) -> str:
    return type(value).__name__


def _type_matches(value: Any, default: Any) -> bool:
    """True if `value` may replace `default`: same type, int for float, anything for a None default."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


class RawValue(str):
    """A value typed as text (command line `-p key value`); its type is decided against the notebook.

    If the parameter's default is a string, the text is used as is (so `-p model 123` stays "123");
    otherwise it is parsed as a YAML/JSON literal (`8`, `0.5`, `true`, `null`, `[1, 2]`), falling back to
    the plain string when it is not one.
    """


def parse_literal(text: str) -> Any:
    """YAML/JSON literal of `text` (numbers, booleans, null, lists, dicts), else `text` itself."""
    import yaml

    stripped = text.strip()
    if stripped == "None":  # the Python spelling, as papermill's -p accepts it
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return str(text)
    if value is None and stripped not in ("null", "Null", "NULL", "~"):
        return str(text)  # empty or comment-only text is a string, not null
    if value is not None and not isinstance(value, (bool, int, float, str, list, dict)):
        return str(text)  # e.g. YAML dates: keep what was typed
    if isinstance(value, str) and value == stripped:
        try:  # JSON numbers YAML 1.1 reads as text, e.g. 1e-3
            number = json.loads(stripped)
        except ValueError:
            return str(text)
        return number if isinstance(number, (int, float)) and not isinstance(number, bool) else value
    return value


def resolve_value(value: Any, parameter: Parameter | None) -> Any:
    """Turn a RawValue into a typed one using the parameter's default; other values pass through."""
    if not isinstance(value, RawValue):
        return value
    if parameter is not None and isinstance(parameter.default, str):
        return str(value)
    return parse_literal(value)


def validate_parameters(notebook: str | Path | Any, parameters: dict[str, Any]) -> dict[str, Parameter]:
    """Check `parameters` against the notebook's `parameters` cell; returns the declared parameters.

    Raises ValueError for: no `parameters` cell, an unknown name (the message lists the allowed ones), or a
    value whose type differs from the literal default's (int is accepted for float; any value for None).
    """
    if not isinstance(parameters, dict):
        raise ValueError(  # noqa: TRY004  (project rule: bad input is a ValueError)
            f"parameters must be a dict of name -> value, got {type(parameters).__name__}")
    declared = notebook_parameters(notebook)
    where = notebook if isinstance(notebook, (str, Path)) else "the notebook"
    unknown = [name for name in parameters if name not in declared]
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for {where}; "
            f"allowed: {', '.join(declared) or '(the parameters cell declares none)'}"
        )
    for name, value in parameters.items():
        spec = declared[name]
        value = resolve_value(value, spec)
        if spec.has_literal_default and not _type_matches(value, spec.default):
            raise ValueError(
                f"parameter {name!r} of {where} must be of type {_type_name(spec.default)} (like its default "
                f"{spec.source}), got {_type_name(value)} {value!r}"
            )
    return declared


def resolve_parameters(notebook: str | Path | Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """Validate `parameters` (see `validate_parameters`) and return them with RawValues typed."""
    declared = validate_parameters(notebook, parameters)
    return {name: resolve_value(value, declared[name]) for name, value in parameters.items()}
