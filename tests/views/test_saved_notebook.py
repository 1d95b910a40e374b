"""Saved notebooks: a view's output carries its static HTML next to the widget, identical on every re-run,
and nbconvert's HTML export (no widget state saved) shows that static HTML."""
import nbformat
import pytest
from nbclient import NotebookClient

from .helpers import URL

SOURCE = """from workbench.views import Table, TokenStrip
strip = TokenStrip.from_pieces(["Hello", " world"], ids=[1, 2], scores=[0.5, 2.0], title="saved strip")
display(strip)
Table([{"method": "h2o", "error": 0.25}], title="saved table")"""


def execute() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SOURCE)]
    # JupyterLab saves no widget state by default; what then shows is the static HTML.
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=False).execute()
    return nb


@pytest.mark.slow
def test_outputs_are_deterministic_and_nbconvert_shows_the_static_html():
    from nbconvert import HTMLExporter

    first, second = execute(), execute()
    outputs = first.cells[0].outputs
    assert len(outputs) == 2
    for output in outputs:
        assert {"application/vnd.jupyter.widget-view+json", "text/html", "text/plain"} <= set(output["data"])
    html = [o["data"]["text/html"] for o in outputs]
    assert html == [o["data"]["text/html"] for o in second.cells[0].outputs]  # re-running changes nothing
    assert all(not URL.search(h) for h in html)
    assert outputs[0]["data"]["text/plain"].startswith("TokenStrip(saved strip: 2 tokens")
    page, _ = HTMLExporter().from_notebook_node(first)  # (nbconvert re-serializes the HTML: check the parts)
    strip_id = html[0].split('id="')[1].split('"')[0]
    assert f'id="{strip_id}"' in page and "saved strip" in page and ">\u00b7world</span>" in page
    assert "#1  id 2  bytes 20 77 6f 72 6c 64  offsets [5, 11)  score 2" in page
    assert "saved table" in page and '<td class="wb-num">0.25</td>' in page
