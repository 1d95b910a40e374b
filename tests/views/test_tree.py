"""TreeView: parent checks, tidy layout (hand-computed), highlighted path, selection, static HTML."""
import pytest

from workbench.views import TreeView
from workbench.views.tree import layout

from .helpers import URL, frontend_update

LABELS = ["root", "b", "c", "d", "e"]
PARENTS = [None, 0, 0, 1, 1]  # root -> (b -> (d, e), c)


def tree(**options):
    return TreeView(LABELS, PARENTS, **options)


def test_layout_by_hand():
    # leaves in depth-first order: d=0, e=1, c=2; b midway between d and e; root midway between b and c
    assert layout([-1, 0, 0, 1, 1]) == [(0, 1.25), (1, 0.5), (1, 2.0), (2, 0.0), (2, 1.0)]
    assert layout([-1, -1, 0]) == [(0, 0.0), (0, 1.0), (1, 0.0)]  # a forest: each root gets its own slots


def test_deep_chain_does_not_recurse():
    n = 3000
    places = layout([-1] + list(range(n - 1)))
    assert places[-1] == (n - 1, 0.0)
    html = TreeView([str(i) for i in range(n)], [None] + list(range(n - 1))).html
    assert html.count("<g ") == n
    assert f"node {n - 1}: &#x27;{n - 1}&#x27;  depth {n - 1}  path: ... &gt; {n - 8} &gt; " in html


def test_bad_parents_and_paths_are_rejected():
    with pytest.raises(ValueError, match="parents: node 1 has parent 1"):
        TreeView(["a", "b"], [None, 1])
    with pytest.raises(ValueError, match="parents: expected 2 entries"):
        TreeView(["a", "b"], [None])
    with pytest.raises(ValueError, match="labels: a tree needs at least one node"):
        TreeView([], [])
    with pytest.raises(ValueError, match="highlight: must be a path, but node 3's parent is 1, not 2"):
        tree(highlight=[0, 2, 3])
    with pytest.raises(ValueError, match="highlight: node 9"):
        tree(highlight=[9])


def test_click_selects_a_node_and_its_path():
    t = tree(highlight=[0, 1, 4])
    frontend_update(t, selected=3)
    assert t.selected == 3 and t.selected_path == [0, 1, 3]
    frontend_update(t, selected=-1)
    assert t.selected_path == []
    frontend_update(t, selected=17)
    assert t.selected == -1
    assert t.path_to(4) == [0, 1, 4]


def test_static_html():
    t = tree(highlight=[0, 1, 4], scores=[1.0, 0.5, 0.25, 0.0, 0.75], title="draft tree")
    html = t.to_html()
    assert html == tree(highlight=[0, 1, 4], scores=[1.0, 0.5, 0.25, 0.0, 0.75], title="draft tree").to_html()
    assert not URL.search(html) and "<script" not in html
    assert "<svg" in html and html.count("<g ") == 5 and html.count('class="wb-tree-edge') == 4
    assert html.count('class="wb-tree-edge wb-path"') == 2
    assert html.count('class="wb-tree-node wb-path"') == 3
    assert "node 4: &#x27;e&#x27;  depth 2  score 0.75  path: root &gt; b &gt; e" in html
    assert "draft tree" in html


def test_text_repr_marks_the_path():
    assert repr(tree(highlight=[0, 2])) == "TreeView(5 nodes)\n*root\n   b\n     d\n     e\n  *c"
