import argparse
import subprocess
import sys

import pytest

from workbench.experiments import read_scraps
from workbench.experiments.cli import register


def cli(argv):
    """Parse and dispatch like `workbench` does, with only the experiments subcommands registered."""
    parser = argparse.ArgumentParser(prog="workbench")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def tiny(notebook_factory):
    return notebook_factory(
        "tiny.ipynb", "steps = 1\nword = 'w'\nrate = 0.5",
        "from workbench.experiments import scrap\nscrap('steps', steps)\nscrap('word', word)\nscrap('rate', rate)\n"
        "scrap('lines', 'x\\ny')\n"
        "assert steps != 13, 'unlucky'",
    )


def test_run_end_to_end_prints_output_path_and_scraps(tiny, tmp_path):
    runs = tmp_path / "my-runs"
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(tiny), "-p", "steps", "7",
                           "-p", "word", "42", "-p", "rate", "1e-2", "--runs-dir", str(runs), "--name", "cli", "-q"],
                          capture_output=True, text=True, timeout=600, check=False)
    out = done.stdout
    assert done.returncode == 0, done.stderr
    path = runs / "tiny" / "cli.ipynb"
    assert out.splitlines()[0].startswith("ok in ") and out.splitlines()[0].endswith(f": {path}")
    # "42" stays text because the default of `word` is a str
    assert read_scraps(path) == {"steps": 7, "word": "42", "rate": 0.01, "lines": "x\ny"}
    assert "  steps  7" in out and "  word   42" in out and "  rate   0.01" in out
    assert '  lines  "x\\ny"' in out  # multi-line text is shown quoted on one line


def test_run_failure_exits_non_zero(tiny, tmp_path, capsys):
    code = cli(["run", str(tiny), "-p", "steps", "13", "--runs-dir", str(tmp_path / "r"), "-q"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.startswith("failed in ")
    assert "notebook failed: In [" in captured.err and "AssertionError: unlucky" in captured.err


def test_run_bad_parameters_raise_value_error_before_running(tiny, tmp_path, no_execution):
    with pytest.raises(ValueError, match="unknown parameter.*'step'.*allowed: steps, word, rate"):
        cli(["run", str(tiny), "-p", "step", "7", "--runs-dir", str(tmp_path / "r")])
    with pytest.raises(ValueError, match="'steps'.*type int.*got str 'seven'"):
        cli(["run", str(tiny), "-p", "steps", "seven", "--runs-dir", str(tmp_path / "r")])
    with pytest.raises(ValueError, match="-p steps given twice"):
        cli(["run", str(tiny), "-p", "steps", "1", "-p", "steps", "2", "--runs-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_workbench_command_reports_bad_parameters_in_one_line(tiny, tmp_path):
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(tiny), "-p", "stepz", "7",
                           "--runs-dir", str(tmp_path / "r")], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"workbench run: error: unknown parameter(s) 'stepz' for {tiny}; allowed: steps, word, rate"]
    assert not (tmp_path / "r").exists()
