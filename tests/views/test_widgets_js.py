"""The front-end modules: offline (no URLs, no imports: anywidget loads each from a blob URL, so a module
cannot import anything), valid ES modules (checked with node when it is installed), anywidget-shaped."""
import re
import shutil
import subprocess

import pytest

from workbench.resources import resource_dir

from .helpers import URL

MODULES = ["token_strip.js", "heatmap.js", "tree.js", "table.js", "explorer.js"]


def test_every_widget_module_is_there():
    assert sorted(p.name for p in resource_dir("widgets").glob("*.js")) == sorted(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_is_offline_and_anywidget_shaped(name):
    source = (resource_dir("widgets") / name).read_text()
    assert not URL.search(source)
    assert not re.search(r"^\s*import\b|\bimport\s*\(", source, re.MULTILINE)
    assert "export default { render };" in source
    assert "\n" in source.strip()  # anywidget treats a one-line string as a file path


@pytest.mark.parametrize("name", MODULES)
def test_module_parses_as_an_es_module(name, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the browser test still loads every module")
    copy = tmp_path / (name[:-3] + ".mjs")
    copy.write_text((resource_dir("widgets") / name).read_text())
    result = subprocess.run([node, "--check", str(copy)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
