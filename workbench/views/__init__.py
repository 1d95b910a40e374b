"""Interactive views: anywidget widgets (front-ends in widgets/) with a static HTML and a text form each.

Generic pieces: `TokenStrip`, `Heatmap`, `TreeView`, `Table`, `line_plot` / `bar_plot` (-> `Plot`), and
the `Explorer` (a tab per component family; families add tabs with `register_tab`).
"""
from workbench.views.base import InvalidState, Showable, View, WidgetView
from workbench.views.explorer import Control, Explorer, ExplorerTab, Progress, register_tab, registered_tabs
from workbench.views.heatmap import Heatmap
from workbench.views.plots import Plot, bar_plot, line_plot
from workbench.views.table import Table
from workbench.views.token_strip import Token, TokenStrip
from workbench.views.tree import TreeView

__all__ = [
    "Control", "Explorer", "ExplorerTab", "Heatmap", "InvalidState", "Plot", "Progress", "Showable", "Table",
    "Token", "TokenStrip", "TreeView", "View", "WidgetView", "bar_plot", "line_plot", "register_tab",
    "registered_tabs",
]
