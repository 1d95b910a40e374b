"""Bad sweep input is refused with a clear error before any run starts (and before the folder exists)."""
import socket
import time

import pytest

from workbench.cli import main
from workbench.experiments import sweep as sweep_module
from workbench.experiments.parameters import RawValue
from workbench.experiments.sweep import sweep

PARAMS = "lr = 0.1\nsteps = 3\nname = 'run'\nflag = False"


@pytest.fixture
def never_run(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a run was started although the input was invalid")

    monkeypatch.setattr(sweep_module, "_run_local", refuse)
    monkeypatch.setattr(sweep_module, "_run_dask", refuse)
    monkeypatch.setattr(sweep_module, "execute_run", refuse)


@pytest.fixture
def nb(notebook_factory):
    return notebook_factory("train.ipynb", PARAMS, "print(lr, steps, name, flag)")


def _refused(nb, tmp_path, match, **kwargs):
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match=match):
        sweep(nb, out_dir=out, progress=False, **kwargs)
    assert not out.exists()  # nothing was started or written


def test_unknown_grid_key_lists_the_notebook_parameters(nb, tmp_path, never_run):
    _refused(nb, tmp_path, r"unknown parameter\(s\) 'learning_rate'.*parameters are: lr, steps, name, flag",
             grid={"learning_rate": [0.1, 0.2]})
    _refused(nb, tmp_path, r"unknown parameter\(s\) 'epochs'", grid={"lr": [0.1]}, fixed={"epochs": 2})


def test_notebook_without_parameters_cell(notebook_factory, tmp_path, never_run):
    plain = notebook_factory("plain.ipynb", None, "lr = 0.1")
    _refused(plain, tmp_path, "has no cell tagged 'parameters'", grid={"lr": [0.1]})


@pytest.mark.parametrize("grid, match", [
    ({"steps": [RawValue("3"), RawValue("many")]}, "parameter 'steps' .* must be of type int .* got str 'many'"),
    ({"steps": [2.5]}, "parameter 'steps' .* must be of type int .* got float 2.5"),
    ({"flag": [RawValue("1")]}, "parameter 'flag' .* must be of type bool"),
    ({"lr": [RawValue("fast")]}, "parameter 'lr' .* must be of type float .* got str 'fast'"),
])
def test_value_of_the_wrong_type(nb, tmp_path, never_run, grid, match):
    _refused(nb, tmp_path, match, grid=grid)


def test_wrong_type_in_fixed_values(nb, tmp_path, never_run):
    _refused(nb, tmp_path, "parameter 'steps'.*must be of type int", grid={"lr": [0.1]},
             fixed={"steps": RawValue("x")})


@pytest.mark.parametrize("grid, match", [
    ({"lr": []}, r"grid\['lr'\] is empty"),
    ({}, "grid must be a non-empty dict"),
    ({"lr": 0.1}, r"grid\['lr'\] must be a list"),
    ({"lr": [0.1, 0.1]}, r"grid\['lr'\] repeats a value"),
])
def test_empty_or_malformed_grid(nb, tmp_path, never_run, grid, match):
    _refused(nb, tmp_path, match, grid=grid)


def test_key_both_in_grid_and_fixed(nb, tmp_path, never_run):
    _refused(nb, tmp_path, "given both in the grid and as fixed", grid={"lr": [0.1]}, fixed={"lr": 0.2})


def test_bad_workers_and_metrics(nb, tmp_path, never_run):
    _refused(nb, tmp_path, "workers must be a positive integer", grid={"lr": [0.1]}, workers=0)
    _refused(nb, tmp_path, "metrics must be non-empty", grid={"lr": [0.1]}, metrics=[""])


def test_unreachable_dask_address(nb, tmp_path, never_run):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    _refused(nb, tmp_path, f"dask_address 'tcp://127.0.0.1:{port}': cannot reach a Dask scheduler within 1 s",
             grid={"lr": [0.1]}, dask_address=f"tcp://127.0.0.1:{port}", dask_timeout=1)
    assert time.perf_counter() - start < 20


def test_other_sweep_in_the_same_folder_is_refused(nb, tmp_path, never_run):
    from workbench.experiments.sweep_store import SweepStore, file_sha256

    out = tmp_path / "sweep"
    SweepStore(out).open({"notebook": str(nb), "notebook_sha256": file_sha256(nb), "grid": {"lr": [0.1, 0.2]},
                          "fixed": {}})
    with pytest.raises(ValueError, match=r"holds another sweep \(the grid differ.*choose another out_dir"):
        sweep(nb, {"lr": [0.1, 0.3]}, out_dir=out, progress=False)
    nb.write_text(nb.read_text().replace("print(lr", "print( lr"))
    with pytest.raises(ValueError, match=r"the notebook's content differ"):
        sweep(nb, {"lr": [0.1, 0.2]}, out_dir=out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_cli_prints_one_line_errors(nb, tmp_path, capsys, never_run):
    out = tmp_path / "sweep"
    assert main(["sweep", str(nb), "--grid", "epochs=1,2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("workbench sweep: error: unknown parameter(s) 'epochs'") and "\n" not in err
    assert main(["sweep", str(nb), "--grid", "steps=", "--out", str(out)]) == 2
    assert "--grid steps: empty value" in capsys.readouterr().err
    assert main(["sweep", str(nb), "--grid", "steps=1,two", "--out", str(out)]) == 2
    assert "must be of type int" in capsys.readouterr().err
    assert main(["sweep", str(nb), "--out", str(out)]) == 2
    assert "at least one --grid" in capsys.readouterr().err
    assert not out.exists()
