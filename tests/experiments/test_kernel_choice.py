import json
import sys

import pytest

from workbench.experiments.kernel import (
    _runs_this_interpreter,
    ensure_kernel,
    own_kernel_name,
)


def test_runs_this_interpreter():
    assert _runs_this_interpreter(["python", "-m", "ipykernel_launcher"])
    assert _runs_this_interpreter(["python3", "-m", "ipykernel_launcher"])
    assert _runs_this_interpreter([sys.executable, "-m", "ipykernel_launcher"])
    assert not _runs_this_interpreter(["/opt/other/bin/python3.9", "-m", "ipykernel_launcher"])
    assert not _runs_this_interpreter([])


@pytest.fixture
def jupyter_dirs(tmp_path, monkeypatch):
    """Isolated Jupyter search path (first) and user data dir, so the machine's own specs are untouched."""
    path, data = tmp_path / "path", tmp_path / "data"
    monkeypatch.setenv("JUPYTER_PATH", str(path))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    return path, data


def _write_spec(folder, name, argv):
    spec = folder / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python"}))


def test_python3_spec_running_this_interpreter_is_used(jupyter_dirs):
    path, data = jupyter_dirs
    _write_spec(path, "python3", ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    assert ensure_kernel() == "python3"
    assert not (data / "kernels").exists()


def test_python3_spec_of_another_interpreter_gets_a_spec_for_this_one(jupyter_dirs):
    path, data = jupyter_dirs
    _write_spec(path, "python3", ["/opt/elsewhere/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    name = ensure_kernel()
    assert name == own_kernel_name()
    spec = json.loads((data / "kernels" / name / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    assert ensure_kernel() == name  # found again, not reinstalled elsewhere


def test_unknown_explicit_kernel_lists_installed_ones(jupyter_dirs):
    with pytest.raises(ValueError, match=r"kernel_name 'no-such-kernel' is not installed; installed kernels: .*python3"):
        ensure_kernel("no-such-kernel")
