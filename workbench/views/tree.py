"""Tree view: nodes (a label and an optional score each), parent edges, and a highlighted path, drawn as SVG
left to right (e.g. a speculative-decoding token tree with its accepted path). Clicking a node selects it."""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import traitlets

from workbench.views.base import InvalidState, WidgetView
from workbench.views.html import ColorScale, escape, format_number, text_color, widget_source
from workbench.views.token_strip import _check_scores

DX, DY, PAD, CHAR_W, BOX_H = 28, 26, 6, 7, 18
MAX_LABEL = 16
PATH_SHOWN = 8  # labels of a node's path shown in its hover text


def _check_parents(parents: Sequence[int | None]) -> list[int]:
    """Parents as ints (-1 = root); each parent must come earlier, so the nodes are in topological order."""
    out = []
    for i, p in enumerate(parents):
        p = -1 if p is None else int(p)
        if p != -1 and not 0 <= p < i:
            raise ValueError(f"parents: node {i} has parent {p}; a parent must be -1/None (root) or an earlier "
                             f"node index in [0, {i})")
        out.append(p)
    return out


def layout(parents: Sequence[int]) -> list[tuple[int, float]]:
    """(depth, slot) per node: leaves take consecutive slots in depth-first order, a parent sits midway
    between its first and last child (a simple tidy layout)."""
    children: list[list[int]] = [[] for _ in parents]
    for i, p in enumerate(parents):
        if p >= 0:
            children[p].append(i)
    depth = [0] * len(parents)
    slot = [0.0] * len(parents)
    next_leaf = 0
    # Iterative depth-first walk (trees can be deep chains): visit children first, then place the node.
    stack = [(root, False) for root in reversed([i for i, p in enumerate(parents) if p < 0])]
    while stack:
        node, done = stack.pop()
        if not done:
            stack.append((node, True))
            for child in reversed(children[node]):
                depth[child] = depth[node] + 1
                stack.append((child, False))
        elif children[node]:
            slot[node] = (slot[children[node][0]] + slot[children[node][-1]]) / 2
        else:
            slot[node] = float(next_leaf)
            next_leaf += 1
    return list(zip(depth, slot))


class TreeView(WidgetView):
    """`labels[i]` is node i, `parents[i]` its parent (-1/None for a root, else an earlier index).
    `highlight` is a path (each node the child of the one before); `selected` the clicked node and
    `selected_path` the root-to-selected path."""

    kind = "tree"
    _esm = widget_source("tree.js")

    labels = traitlets.List(trait=traitlets.Unicode())
    parents = traitlets.List(trait=traitlets.Int())
    scores = traitlets.List()
    title = traitlets.Unicode("")
    score_label = traitlets.Unicode("score")
    scale = traitlets.Unicode("auto")
    highlight = traitlets.List(trait=traitlets.Int()).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    selected_path = traitlets.List(trait=traitlets.Int()).tag(sync=True)

    def __init__(self, labels: Sequence[object], parents: Sequence[int | None], *,
                 scores: Sequence[float | None] | None = None, highlight: Sequence[int] = (), title: str = "",
                 score_label: str = "score", scale: str = "auto") -> None:
        labels = [str(x) for x in labels]
        if not labels:
            raise ValueError("labels: a tree needs at least one node")
        if len(parents) != len(labels):
            raise ValueError(f"parents: expected {len(labels)} entries (one per label), got {len(parents)}")
        parent_list = _check_parents(parents)
        ColorScale([], scale)
        super().__init__(labels=labels, parents=parent_list, scores=_check_scores(scores, len(labels)),
                         title=title, score_label=score_label, scale=scale)
        self.highlight = [int(i) for i in highlight]
        self.refresh()
        self.observe(self._on_data, names=["labels", "parents", "scores", "title", "score_label", "scale"])

    def _on_data(self, change: Any) -> None:
        if change["name"] == "parents":
            self.selected, self.highlight = -1, []
        self.refresh()

    # ---- state --------------------------------------------------------------------------------------
    def path_to(self, node: int) -> list[int]:
        """Node indices from the root down to `node`."""
        path = []
        while node >= 0:
            path.append(node)
            node = self.parents[node]
        return path[::-1]

    @traitlets.validate("highlight")
    def _validate_highlight(self, proposal: Any) -> list[int]:
        path = proposal["value"]
        for i in path:
            if not 0 <= i < len(self.labels):
                raise InvalidState(f"highlight: node {i} is not in [0, {len(self.labels)})")
        for a, b in itertools.pairwise(path):
            if self.parents[b] != a:
                raise InvalidState(f"highlight: must be a path, but node {b}'s parent is {self.parents[b]}, not {a}")
        return path

    @traitlets.validate("selected")
    def _validate_selected(self, proposal: Any) -> int:
        value = proposal["value"]
        if not -1 <= value < len(self.labels):
            raise InvalidState(f"selected: must be -1 (none) or a node index in [0, {len(self.labels)}), got {value}")
        return value

    @traitlets.observe("selected")
    def _update_selected_path(self, change: Any) -> None:
        self.selected_path = [] if change["new"] < 0 else self.path_to(change["new"])

    # ---- rendering ----------------------------------------------------------------------------------
    def detail(self, node: int, depth: int | None = None) -> str:
        """Hover text of `node`: label, depth, score and the last few labels of its path from the root."""
        tail, up = [], node
        while up >= 0 and len(tail) < PATH_SHOWN:
            tail.append(self.labels[up])
            up = self.parents[up]
        depth = len(self.path_to(node)) - 1 if depth is None else depth
        text = f"node {node}: {self.labels[node]!r}  depth {depth}"
        if self.scores[node] is not None:
            text += f"  {self.score_label} {format_number(self.scores[node])}"
        return text + "  path: " + ("... > " if up >= 0 else "") + " > ".join(tail[::-1])

    def html_body(self) -> str:
        places = layout(self.parents)
        width_chars = min(MAX_LABEL, max(3, *(len(x) for x in self.labels)))
        box_w = width_chars * CHAR_W + 10
        col_w = box_w + DX
        xy = [(PAD + d * col_w, PAD + s * DY) for d, s in places]
        width = PAD * 2 + (max(d for d, _ in places) + 1) * col_w - DX
        height = PAD * 2 + (max(s for _, s in places) + 1) * DY - (DY - BOX_H)
        scale = ColorScale(self.scores, self.scale) if any(s is not None for s in self.scores) else None
        on_path = set(self.highlight)
        path_edges = set(zip(self.highlight, self.highlight[1:]))
        edges, nodes = [], []
        for i, p in enumerate(self.parents):
            x, y = xy[i]
            if p >= 0:
                px, py = xy[p][0] + box_w, xy[p][1] + BOX_H / 2
                mid = (px + x) / 2
                cls = "wb-tree-edge wb-path" if (p, i) in path_edges else "wb-tree-edge"
                edges.append(f'<path class="{cls}" data-child="{i}" '
                             f'd="M{px:g},{py:g} C{mid:g},{py:g} {mid:g},{y + BOX_H / 2:g} {x:g},{y + BOX_H / 2:g}"/>')
            fill = scale(self.scores[i]) if scale else None
            rect_style = f' style="fill:{fill}"' if fill else ' style="fill:#f6f8fa"'
            ink = text_color(fill) if fill else "#1f2328"
            label = self.labels[i] if len(self.labels[i]) <= MAX_LABEL else self.labels[i][:MAX_LABEL - 1] + "\u2026"
            cls = "wb-tree-node" + (" wb-path" if i in on_path else "") + (" wb-selected" if i == self.selected else "")
            nodes.append(f'<g class="{cls}" data-index="{i}"><title>{escape(self.detail(i, places[i][0]))}</title>'
                         f'<rect x="{x:g}" y="{y:g}" width="{box_w}" height="{BOX_H}"{rect_style}/>'
                         f'<text x="{x + 5:g}" y="{y + 13:g}" style="fill:{ink}">{escape(label)}</text></g>')
        title = f'<div class="wb-title">{escape(self.title)}</div>' if self.title else ""
        legend = scale.legend_html(self.score_label) if scale else ""
        default = f"{len(self.labels)} nodes; click a node for its path"
        return (f'{title}<svg class="wb-tree-svg" width="{width:g}" '
                f'height="{height:g}" viewBox="0 0 {width:g} {height:g}">{"".join(edges)}{"".join(nodes)}</svg>'
                f'{legend}<div class="wb-detail" data-default="{escape(default)}">{escape(default)}</div>')

    def to_text(self) -> str:
        lines = [f"TreeView({self.title + ': ' if self.title else ''}{len(self.labels)} nodes)"]

        children: list[list[int]] = [[] for _ in self.parents]
        for i, p in enumerate(self.parents):
            if p >= 0:
                children[p].append(i)
        stack = [(root, 0) for root in reversed([i for i, p in enumerate(self.parents) if p < 0])]
        while stack:
            node, level = stack.pop()
            mark = "*" if node in self.highlight else " "
            lines.append(f"{'  ' * level}{mark}{self.labels[node]}")
            stack.extend((child, level + 1) for child in reversed(children[node]))
        return "\n".join(lines[:60] + (["..."] if len(lines) > 60 else []))
