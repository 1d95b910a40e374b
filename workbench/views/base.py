"""What every view shares: a static self-contained HTML form, a text form, and `show()`.

A *view* renders its body once, in Python (`html_body()`). The same HTML is used twice:
- statically, by `_repr_html_()`: wrapped with the stylesheet and a stable id, so saved notebooks, nbconvert
  HTML and GitHub show it without a kernel or JavaScript (hover details are `title` tooltips);
- live, by the anywidget front-end in `widgets/<name>.js`, which injects the `html` trait and only adds the
  interaction (clicks set traits such as `selected`, hover shows details, CSS classes mark the selection).
One renderer means the live and saved pictures cannot drift apart, and it is tested without a browser.

Result dataclasses of the families use `Showable`: they define `view()` and get `_repr_html_()` and `show()`.
"""
from __future__ import annotations

from typing import ClassVar

import anywidget
import traitlets

from workbench.views.html import page, stylesheet


class InvalidState(ValueError, traitlets.TraitError):
    """A bad value for a view's trait. A ValueError (the project's rule) and a TraitError, so that traitlets
    rolls the trait back when the bad value came from the front-end inside a batch of changes."""


class View:
    """Mixin: subclasses define `kind`, `html_body()` and `to_text()`."""

    kind: ClassVar[str] = "view"

    def html_body(self) -> str:
        raise NotImplementedError

    def to_text(self) -> str:
        raise NotImplementedError

    def to_html(self) -> str:
        """Self-contained static HTML: inline CSS, no scripts, no URLs, deterministic ids."""
        return page(self.kind, self.html_body())

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        try:
            return self.to_text()
        except Exception:  # a half-built object (e.g. during traitlets init) must still repr
            return object.__repr__(self)

    def show(self) -> View:
        """Display the live view in the notebook (the static HTML travels with it) and return self."""
        from IPython.display import display

        display(self)
        return self


class WidgetView(View, anywidget.AnyWidget):
    """A view that is also a live anywidget. Subclasses set `_esm = widget_source("<name>.js")`."""

    _css = stylesheet()
    html = traitlets.Unicode("").tag(sync=True)

    def refresh(self) -> None:
        """Re-render the body into the synced `html` trait (call after changing data traits)."""
        self.html = self.html_body()


class Showable:
    """Mixin for result dataclasses: define `view()` (a View); get `_repr_html_()` and `show()`."""

    def view(self) -> View:
        raise NotImplementedError

    def _repr_html_(self) -> str:
        return self.view().to_html()

    def show(self) -> View:
        return self.view().show()
