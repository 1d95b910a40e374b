import argparse
import base64
import html
import re
from pathlib import Path

import pytest

from workbench.experiments import run_tour
from workbench.experiments.cli import register


def cli(argv):
    parser = argparse.ArgumentParser(prog="workbench")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


GOOD_CELLS = (
    ("from workbench.experiments import scrap, scrap_figure\n"
     "scrap('greeting', greeting)\nscrap('size', size)\nscrap('long', 'x' * 1000)"),
    ("import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
     "fig, ax = plt.subplots(figsize=(2, 1))\nax.bar([0, 1], [size, 1])\nscrap_figure('bars', fig, dpi=30)"),
)


@pytest.fixture
def folder(notebook_factory):
    nbs = notebook_factory("nbs/01_good.ipynb", "greeting = 'hi <b>'\nsize = 2", *GOOD_CELLS).parent
    notebook_factory("nbs/02_bad.ipynb", "size = 1",
                  "from workbench.experiments import scrap\nscrap('started', True)",
                  "raise RuntimeError('deliberate failure')")
    (nbs / "notes.txt").write_text("not a notebook")
    return nbs


def test_tour_writes_an_index_with_both_notebooks_and_exits_non_zero(folder, tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "site"
    code = cli(["tour", "--notebooks", str(folder), "--runs-dir", str(runs), "--out", str(out),
                "-p", "size", "5", "-q"])
    printed = capsys.readouterr()
    index = out / "index.html"
    assert code == 1
    assert f"tour index written to {index}" in printed.out
    assert "1 of 2 notebooks failed" in printed.err
    page = index.read_text(encoding="utf-8")
    # both notebooks, in name order, each with its status
    good, bad = page.index("01_good.ipynb"), page.index("02_bad.ipynb")
    assert good < bad
    assert re.search(r'01_good\.ipynb <span class="status ok">ok</span>', page)
    assert re.search(r'02_bad\.ipynb <span class="status failed">failed</span>', page)
    assert "RuntimeError: deliberate failure" in page[bad:]
    assert "1 ok, 1 failed" in page
    # scraps table (escaped), the -p value reached both notebooks, the long value is folded
    assert "<th>greeting</th><td class=\"value\">hi &lt;b&gt;</td>" in page
    assert "<th>size</th><td class=\"value\">5</td>" in page
    assert "<th>started</th><td class=\"value\">true</td>" in page
    assert "<details>" in page
    # the figure is embedded, and nothing is fetched from elsewhere
    png = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(png).startswith(b"\x89PNG")
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # links lead to the output notebooks
    links = re.findall(r'href="([^"]+)"', page)
    assert len(links) == 2
    assert all((out / html.unescape(link)).resolve().is_file() for link in links)
    assert {Path(link).parent.name for link in links} == {"01_good", "02_bad"}


def test_tour_refuses_a_parameter_no_notebook_declares_before_running(folder, tmp_path, no_execution):
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'sise'.*declared: greeting, size"):
        run_tour(folder, runs_dir=tmp_path / "runs", parameters={"sise": 1})
    with pytest.raises(ValueError, match="'greeting'.*type str"):
        run_tour(folder, runs_dir=tmp_path / "runs", parameters={"greeting": 3})
    (folder / "03_untagged.ipynb").write_text((folder / "02_bad.ipynb").read_text().replace('"parameters"', '"x"'))
    with pytest.raises(ValueError, match="03_untagged.ipynb has no cell tagged 'parameters'"):
        run_tour(folder, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_tour_needs_notebooks(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        run_tour(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .ipynb files"):
        run_tour(tmp_path / "empty")
