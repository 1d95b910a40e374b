"""Interactive views: anywidget widgets (front-ends in widgets/) with a static HTML and a text form each.

Generic pieces: `TokenStrip`, `Heatmap`, `TreeView`, `Table`, `line_plot` / `bar_plot` (-> `Plot`).
"""
from workbench.views.base import InvalidState, Showable, View, WidgetView
from workbench.views.heatmap import Heatmap
from workbench.views.plots import Plot, bar_plot, line_plot
from workbench.views.table import Table
from workbench.views.token_strip import Token, TokenStrip
from workbench.views.tree import TreeView

__all__ = ["Heatmap", "InvalidState", "Plot", "Showable", "Table", "Token", "TokenStrip", "TreeView", "View",
           "WidgetView", "bar_plot", "line_plot"]
