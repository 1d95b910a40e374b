"""Interactive views: anywidget widgets (front-ends in widgets/) with a static HTML and a text form each."""
from workbench.views.base import InvalidState, Showable, View, WidgetView
from workbench.views.token_strip import Token, TokenStrip

__all__ = ["InvalidState", "Showable", "Token", "TokenStrip", "View", "WidgetView"]
