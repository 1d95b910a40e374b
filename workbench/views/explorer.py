"""Explorer: one widget with a tab per component family, controls that re-run the chosen component, progress
while it runs, and errors shown in the widget (never a dead cell).

A family plugs in a tab by registering a small class; the Explorer is never edited for that:

    @register_tab("attribution", title="Attribution")
    class AttributionTab(ExplorerTab):
        def controls(self, lm): return [Control("method", "dropdown", "shapley", options=["shapley", ...])]
        def run(self, lm, text, values, progress): ...; return [TokenStrip(...), Table(...)]

Put the module in `workbench/views/tabs/`: the Explorer imports every module there. Families without a
registered tab still get a tab that says plainly that the family has not landed yet.
"""
from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anywidget
import ipywidgets
import traitlets

from workbench.views.base import View
from workbench.views.html import escape, page, stylesheet, widget_source

FAMILIES = {"tokenization": "Tokenization", "attribution": "Attribution", "sparse": "KV selection",
            "speculative": "Speculative decoding"}
CONTROL_KINDS = ("dropdown", "slider", "number", "text", "checkbox")


@dataclass
class Control:
    """One control of a tab. `options` (dropdown) are values, or (value, label) pairs."""

    name: str
    kind: str
    value: Any
    label: str = ""
    options: Sequence[Any] = ()
    min: float | None = None
    max: float | None = None
    step: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in CONTROL_KINDS:
            raise ValueError(f"kind: must be one of {list(CONTROL_KINDS)}, got {self.kind!r}")
        if self.kind == "dropdown" and not self.options:
            raise ValueError(f"options: dropdown {self.name!r} needs at least one option")
        if self.kind == "slider" and (self.min is None or self.max is None):
            raise ValueError(f"min/max: slider {self.name!r} needs both")
        self.value = self.check(self.value)

    @property
    def option_values(self) -> list[Any]:
        return [o[0] if isinstance(o, (tuple, list)) else o for o in self.options]

    @property
    def integer(self) -> bool:
        return all(isinstance(x, int) or x is None for x in (self.min, self.max, self.step)) and not isinstance(
            self.value, float)

    def check(self, value: Any) -> Any:
        """The value, coerced to the control's type; ValueError naming the control if it is not allowed."""
        if self.kind == "dropdown":
            if value not in self.option_values:
                raise ValueError(f"{self.name}: must be one of {self.option_values}, got {value!r}")
            return value
        if self.kind == "checkbox":
            if not isinstance(value, bool):
                raise ValueError(f"{self.name}: must be true or false, got {value!r}")
            return value
        if self.kind == "text":
            if not isinstance(value, str):
                raise ValueError(f"{self.name}: must be a string, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{self.name}: must be a number, got {value!r}")
        if self.integer:
            if value != int(value):
                raise ValueError(f"{self.name}: must be a whole number, got {value!r}")
            value = int(value)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise ValueError(f"{self.name}: must be in [{self.min}, {self.max}], got {value!r}")
        return value

    def to_dict(self) -> dict[str, Any]:
        options = [{"value": o[0], "label": str(o[1])} if isinstance(o, (tuple, list))
                   else {"value": o, "label": str(o)} for o in self.options]
        return {"name": self.name, "kind": self.kind, "value": self.value, "label": self.label or self.name,
                "options": options, "min": self.min, "max": self.max, "step": self.step}


class Progress:
    """Handed to `ExplorerTab.run`: `progress(fraction, message)` (fraction None = unknown) and
    `progress.iter(items, message)` report into the widget while the run goes on."""

    def __init__(self, report: Callable[[float | None, str], None]) -> None:
        self._report = report

    def __call__(self, fraction: float | None = None, message: str = "") -> None:
        self._report(fraction, message)

    def iter(self, items: Iterable[Any], message: str = "", total: int | None = None) -> Iterator[Any]:
        items = list(items) if total is None else items
        total = len(items) if total is None else total  # type: ignore[arg-type]
        for i, item in enumerate(items):
            self(i / max(total, 1), f"{message} ({i + 1}/{total})")
            yield item
        self(1.0, message)


class ExplorerTab:
    """Base class of a tab: `controls(lm)` lists its controls; `run(...)` returns a view or a list of views."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""

    def controls(self, lm: Any) -> list[Control]:
        return []

    def run(self, lm: Any, text: str, values: dict[str, Any], progress: Progress) -> Any:
        raise NotImplementedError


_TABS: dict[str, type[ExplorerTab]] = {}
_LOAD_ERRORS: dict[str, str] = {}
_DISCOVERED = False


def register_tab(name: str, *, title: str = "") -> Callable[[type[ExplorerTab]], type[ExplorerTab]]:
    """Class decorator: register an ExplorerTab subclass under `name` (a family name or a new one)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: must be an identifier-like string, got {name!r}")

    def decorate(cls: type[ExplorerTab]) -> type[ExplorerTab]:
        if not (isinstance(cls, type) and issubclass(cls, ExplorerTab)):
            raise ValueError(f"register_tab({name!r}): {cls!r} is not an ExplorerTab subclass")
        cls.name, cls.title = name, title or cls.title or FAMILIES.get(name, name.replace("_", " ").title())
        _TABS[name] = cls
        return cls

    return decorate


def registered_tabs() -> dict[str, type[ExplorerTab]]:
    """All registered tabs, after importing every module in workbench.views.tabs (once)."""
    global _DISCOVERED
    if not _DISCOVERED:
        _DISCOVERED = True
        import workbench.views.tabs as package

        for module in pkgutil.iter_modules(package.__path__):
            try:
                importlib.import_module(f"{package.__name__}.{module.name}")
            except Exception as err:  # a broken tab must not take the other tabs down
                _LOAD_ERRORS[module.name] = f"{type(err).__name__}: {err}"
    return dict(_TABS)


def tab_notes() -> dict[str, str]:
    """For each family without a usable tab: the plain sentence its tab shows."""
    tabs = registered_tabs()
    notes = {}
    for name, title in FAMILIES.items():
        if name in _LOAD_ERRORS:
            notes[name] = f"The {title} tab failed to load: {_LOAD_ERRORS[name]}"
        elif name not in tabs:
            notes[name] = (f"{title} has not landed yet: the workbench.{name} family is not built, so there is "
                           f"nothing to explore here yet.")
    return notes


class ExplorerBar(anywidget.AnyWidget):
    """The Explorer's front-end part (widgets/explorer.js): tabs, text, controls, progress, errors."""

    _esm = widget_source("explorer.js")
    _css = stylesheet()

    tabs = traitlets.List().tag(sync=True)
    active = traitlets.Unicode("").tag(sync=True)
    text = traitlets.Unicode("").tag(sync=True)
    controls = traitlets.List().tag(sync=True)
    values = traitlets.Dict().tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    progress = traitlets.Float(0.0).tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)


@dataclass
class _TabState:
    tab: ExplorerTab | None
    controls: list[Control] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    views: list[Any] | None = None
    error: str = ""
    seconds: float = 0.0


class Explorer(View, ipywidgets.VBox):
    """`Explorer(lm, text)`: a tab per family on one LM and one text. `options` maps a tab name to keyword
    arguments for its tab class (e.g. `{"tokenization": {"tokenizers": ["cl100k", "gpt2"]}}`)."""

    kind = "explorer"

    def __init__(self, lm: Any, text: str = "", *, tab: str = "tokenization",
                 options: Mapping[str, Mapping[str, Any]] | None = None, autorun: bool = True) -> None:
        if not isinstance(text, str):
            raise ValueError(f"text: must be a str, got {type(text).__name__}")
        if not hasattr(lm, "tokenizer"):
            raise ValueError(f"lm: must be a workbench LM (with .tokenizer), got {type(lm).__name__}")
        registered = registered_tabs()
        names = list(FAMILIES) + [n for n in registered if n not in FAMILIES]
        if tab not in names:
            raise ValueError(f"tab: must be one of {names}, got {tab!r}")
        options = dict(options or {})
        unknown = sorted(set(options) - set(registered))
        if unknown:
            raise ValueError(f"options: no registered tab named {unknown}; registered: {sorted(registered)}")
        self.lm, self.autorun, self._switching = lm, autorun, False
        self._notes = tab_notes()
        self._states: dict[str, _TabState] = {}
        for name in names:
            state = _TabState(registered[name](**options.get(name, {})) if name in registered else None)
            if state.tab is not None:
                try:
                    state.controls = list(state.tab.controls(lm))
                    state.values = {c.name: c.value for c in state.controls}
                except Exception as err:
                    state.error = f"{type(err).__name__}: {err}"
            self._states[name] = state
        spec = [{"name": n, "title": registered[n].title if n in registered else FAMILIES[n],
                 "available": n in registered, "note": self._notes.get(n, "")} for n in names]
        self.bar = ExplorerBar(tabs=spec, text=text)
        self.body = ipywidgets.VBox()
        super().__init__(children=[self.bar, self.body])
        self.bar.on_msg(self._on_message)
        self.bar.observe(lambda change: self._activate(change["new"]), names="active")
        self.bar.active = tab

    # ---- public state -------------------------------------------------------------------------------
    @property
    def tab_names(self) -> list[str]:
        return list(self._states)

    @property
    def active(self) -> str:
        return self.bar.active

    @active.setter
    def active(self, name: str) -> None:
        if name not in self._states:
            raise ValueError(f"active: must be one of {self.tab_names}, got {name!r}")
        self.bar.active = name

    @property
    def text(self) -> str:
        return self.bar.text

    @property
    def values(self) -> dict[str, Any]:
        return dict(self._states[self.active].values)

    @property
    def views(self) -> list[Any]:
        """The active tab's result views (empty before a successful run)."""
        return list(self._states[self.active].views or [])

    @property
    def error(self) -> str:
        return self.bar.error

    # ---- running ------------------------------------------------------------------------------------
    def run(self, tab: str | None = None, *, text: str | None = None, **values: Any) -> list[Any]:
        """Re-run a tab (default: the active one) with changed `text` and control values; returns its views.
        Errors are shown in the widget and raised."""
        try:
            name = self.active if tab is None else tab
            if name not in self._states:
                raise ValueError(f"tab: must be one of {self.tab_names}, got {name!r}")
            state = self._states[name]
            if state.tab is None:
                raise ValueError(f"tab {name!r}: {self._notes[name]}")
            if text is not None and not isinstance(text, str):
                raise ValueError(f"text: must be a str, got {type(text).__name__}")
            controls = {c.name: c for c in state.controls}
            unknown = sorted(set(values) - set(controls))
            if unknown:
                raise ValueError(f"values: tab {name!r} has no control {unknown}; controls: {sorted(controls)}")
            checked = {key: controls[key].check(value) for key, value in values.items()}
        except ValueError as err:
            self._show_error(err)
            raise
        state.values.update(checked)
        if text is not None:
            self.bar.text = text
        if name != self.active:
            self._switching = True  # show the tab without its autorun: we run it right below
            try:
                self.bar.active = name
            finally:
                self._switching = False
        self.bar.values = dict(state.values)
        return self._execute(name)

    def _execute(self, name: str) -> list[Any]:
        state, bar = self._states[name], self.bar
        bar.error, bar.status, bar.progress, bar.message = "", "running", 0.0, "starting"
        state.error, start = "", time.perf_counter()
        try:
            views = _as_views(state.tab.run(self.lm, bar.text, dict(state.values), Progress(self._report)))
        except Exception as err:
            state.views, state.seconds = None, time.perf_counter() - start
            self.body.children = ()
            self._show_error(err)
            raise
        state.views, state.seconds = views, time.perf_counter() - start
        bar.status, bar.progress, bar.message = "done", 1.0, f"done in {state.seconds:.2f} s"
        self.body.children = tuple(_as_widget(v) for v in views)
        return views

    def _report(self, fraction: float | None, message: str) -> None:
        self.bar.progress = -1.0 if fraction is None else min(1.0, max(0.0, float(fraction)))
        self.bar.message = message

    def _show_error(self, err: BaseException) -> None:
        text = f"{type(err).__name__}: {err}"
        if self.active in self._states:
            self._states[self.active].error = text
        self.bar.status, self.bar.error, self.bar.message = "error", text, ""

    def _activate(self, name: str) -> None:
        if name not in self._states:
            self._show_error(ValueError(f"tab: must be one of {self.tab_names}, got {name!r}"))
            return
        state, bar = self._states[name], self.bar
        bar.controls = [c.to_dict() for c in state.controls]
        bar.values = dict(state.values)
        bar.note = self._notes.get(name, "") if state.tab is None else ""
        bar.error = state.error
        bar.status = "error" if state.error else ("done" if state.views is not None else "idle")
        bar.message = f"done in {state.seconds:.2f} s" if state.views is not None else ""
        self.body.children = tuple(_as_widget(v) for v in state.views or [])
        if state.tab is not None and state.views is None and not state.error and self.autorun \
                and not self._switching:
            try:
                self._execute(name)
            except Exception:
                pass  # shown in the widget

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """Front-end messages: {"type": "run", "text": str, "values": {...}} re-runs the active tab."""
        if not isinstance(content, dict) or content.get("type") != "run":
            self._show_error(ValueError(f"message: expected {{'type': 'run', ...}}, got {content!r}"))
            return
        values = content.get("values") or {}
        if not isinstance(values, dict):
            self._show_error(ValueError(f"values: must be an object, got {values!r}"))
            return
        try:
            self.run(text=content.get("text"), **values)
        except Exception:
            pass  # already shown in the widget; the kernel stays usable

    # ---- static forms -------------------------------------------------------------------------------
    def html_body(self) -> str:
        tabs = "".join(
            f'<span class="wb-tab{" wb-active" if s["name"] == self.active else ""}'
            f'{"" if s["available"] else " wb-unavailable"}" title="{escape(s["note"])}">{escape(s["title"])}</span>'
            for s in self.bar.tabs)
        state = self._states[self.active]
        parts = [f'<div class="wb-tabs">{tabs}</div>']
        if state.tab is None:
            parts.append(f'<div class="wb-note">{escape(self._notes[self.active])}</div>')
        else:
            settings = ", ".join(f"{k}={v!r}" for k, v in state.values.items())
            parts.append(f'<div class="wb-detail">text: {escape(repr(self.text))}'
                         f'{"; " + escape(settings) if settings else ""}</div>')
        if state.error:
            parts.append(f'<div class="wb-error">{escape(state.error)}</div>')
        for view in state.views or []:
            if isinstance(view, View):
                parts.append(page(view.kind, view.html_body(), style=False))
        missing = [FAMILIES[n] for n in self._notes if n in FAMILIES]
        if missing:
            parts.append(f'<div class="wb-note">Not landed yet: {escape(", ".join(missing))}.</div>')
        return "".join(parts)

    def to_text(self) -> str:
        state = self._states[self.active]
        marks = [f"{n}{'' if self._states[n].tab else ' (not landed)'}" for n in self._states]
        lines = [f"Explorer(active={self.active!r}, tabs: {', '.join(marks)})"]
        if state.tab is None:
            lines.append(self._notes[self.active])
        if state.error:
            lines.append(f"error: {state.error}")
        lines += [repr(v) for v in state.views or []]
        return "\n".join(lines)


def _as_views(result: Any) -> list[Any]:
    views = list(result) if isinstance(result, (list, tuple)) else [result]
    for i, view in enumerate(views):
        if not isinstance(view, (View, ipywidgets.Widget)):
            raise TypeError(f"tab returned {type(view).__name__} at position {i}; expected a view or a widget")
    return views


def _as_widget(view: Any) -> ipywidgets.Widget:
    if isinstance(view, ipywidgets.Widget):
        return view
    return ipywidgets.HTML(value=view.to_html())
