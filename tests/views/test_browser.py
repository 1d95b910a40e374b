"""Real browser: JupyterLab + headless Chromium run a notebook; the views render live, and a click in the
token strip changes the Python widget's state, seen from the kernel twice: an observer in the notebook writes
the new value to a file, and a later cell, re-run after the click, prints it into the page."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from .browser import CHROMIUM, JupyterLab, launch_chromium

CELLS = [
    # 0: a token strip whose selection the kernel records in a file
    """import json, pathlib
from workbench.views import TokenStrip
strip = TokenStrip.from_pieces(["Hello", ",", " world", "!"], ids=[9906, 11, 1917, 0],
                               scores=[1.0, 3.0, 0.5, 2.0], score_label="surprisal", title="browser test")
strip.observe(lambda change: pathlib.Path("selected.json").write_text(json.dumps({"selected": change["new"]})),
              names="selected")
strip""",
    # 1: the kernel's view of the selection, printed into the page (re-run after the click)
    'print(f"KERNEL_SELECTED={strip.selected}")',
    # 2: the Explorer on the tiny seeded LM
    """from workbench.models.tiny import tiny_lm
from workbench.views import Explorer
explorer = Explorer(tiny_lm(), "Hello world")
explorer""",
    # 3: heatmap, tree and table: clicks whose answer comes back from Python
    """from workbench.views import Heatmap, Table, TreeView
heat = Heatmap([[0.1, 0.9, 0.0], [0.7, 0.2, 0.1]], row_labels=["out1", "out2"], col_labels=["a", "b", "c"],
               title="linked heatmap")
tree = TreeView(["root", "x", "y", "z"], [None, 0, 0, 1], highlight=[0, 1, 3], title="token tree")
table = Table([{"method": "h2o", "score": 0.5}, {"method": "full", "score": 0.9}, {"method": "snapkv", "score": 0.1}],
              title="results")
display(heat, tree, table)""",
]


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, path)


def wait_for_file(path: Path, expected: dict, timeout: float) -> dict:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if path.exists():
            try:
                last = json.loads(path.read_text())
            except json.JSONDecodeError:
                last = None
            if last == expected:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{path.name}: expected {expected}, last seen {last}")


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_views_render_and_clicks_reach_the_kernel(tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    root, scratch = tmp_path / "root", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    write_notebook(root / "views.ipynb")
    started = time.monotonic()
    console: list[str] = []
    with JupyterLab(root, scratch) as lab, sync_playwright() as playwright:
        context = launch_chromium(playwright, scratch / "chromium-profile")
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(60_000)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
            page.goto(lab.url("lab/tree/views.ipynb"))
            page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                   timeout=90_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

            # the token strip renders live (the anywidget front-end, not the static fallback)
            cells = page.locator(".jp-Notebook .jp-CodeCell")
            token = cells.nth(0).locator(".wb-live .wb-token[data-index='2']")
            expect(token).to_have_text("\u00b7world", timeout=120_000)
            expect(cells.nth(1).locator(".jp-OutputArea")).to_contain_text("KERNEL_SELECTED=-1", timeout=60_000)

            token.click()
            expect(cells.nth(0).locator(".wb-live .wb-token.wb-selected")).to_have_attribute("data-index", "2")
            wait_for_file(root / "selected.json", {"selected": 2}, timeout=30)

            # re-run cell 1: the kernel prints the selection the click made
            page.evaluate("""async () => {
                const panel = window.jupyterapp.shell.currentWidget;
                panel.content.activeCellIndex = 1;
                await window.jupyterapp.commands.execute('notebook:run-cell');
            }""")
            expect(cells.nth(1).locator(".jp-OutputArea")).to_contain_text("KERNEL_SELECTED=2", timeout=60_000)

            # the Explorer: the tokenization tab ran; a family that has not landed says so
            explorer = cells.nth(2).locator(".wb-explorer.wb-live")
            expect(explorer.locator(".wb-tab.wb-active")).to_have_text("Tokenization", timeout=180_000)
            expect(cells.nth(2).locator(".wb-live .wb-token")).to_have_count(11, timeout=60_000)  # 11 bytes
            tabs = explorer.locator(".wb-tab.wb-unavailable")
            if tabs.count():
                tabs.first.click()
                expect(explorer.locator(".wb-note")).to_contain_text("has not landed yet")
                explorer.locator(".wb-tab", has_text="Tokenization").click()
                expect(explorer.locator(".wb-tab.wb-active")).to_have_text("Tokenization")
            # a control re-runs the tab: generate 5 tokens with the slider
            slider = explorer.locator("input[data-control='max_new_tokens']")
            slider.evaluate("(el) => { el.value = 5; el.dispatchEvent(new Event('change', {bubbles: true})); }")
            expect(cells.nth(2).locator(".wb-live .wb-token")).to_have_count(16, timeout=60_000)
            expect(cells.nth(2).locator(".wb-title", has_text="generation")).to_be_visible()

            # heatmap: clicking a row label highlights that row's largest column (computed in Python)
            views = cells.nth(3)
            views.locator(".wb-hm-row", has_text="out2").click()
            expect(views.locator(".wb-hm-col.wb-highlight")).to_have_text("a")
            # tree: clicking a node selects it; table: clicking a header re-sorts (in Python)
            views.locator(".wb-tree-node[data-index='2']").click()
            expect(views.locator(".wb-tree-node.wb-selected")).to_have_attribute("data-index", "2")
            views.locator(".wb-table th", has_text="score").click()
            expect(views.locator(".wb-table tbody tr").first).to_contain_text("snapkv")
            views.screenshot(path=str(tmp_path / "workbench_views_cell4.png"))
            cells.nth(0).scroll_into_view_if_needed()
            shot = tmp_path / "workbench_views.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()
    print(f"\nscreenshots: {shot} and {tmp_path / 'workbench_views_cell4.png'}")
    print(f"browser test took {time.monotonic() - started:.1f} s")
    assert shot.stat().st_size > 10_000
    assert not [line for line in console if "anywidget" in line.lower() or "wb-" in line], console
