import pytest

from workbench.experiments import (
    RawValue,
    notebook_parameters,
    parse_literal,
    resolve_parameters,
    run_notebook,
    validate_parameters,
)
from workbench.experiments.runner import output_path_for

PARAMS = """\
# defaults
%matplotlib inline
model = "smollm2-135m"
steps: int = 8
temperature = 0.0
verbose = False
layers = [0, 1]
extra = None
stamp = time.time()
"""


@pytest.fixture
def nb(notebook_factory):
    return notebook_factory("p.ipynb", PARAMS, "print(model)")


def test_parameters_cell_is_parsed_in_order_with_literal_defaults(nb):
    params = notebook_parameters(nb)
    assert list(params) == ["model", "steps", "temperature", "verbose", "layers", "extra", "stamp"]
    assert params["model"].default == "smollm2-135m"
    assert params["steps"].default == 8 and params["temperature"].default == 0.0
    assert params["layers"].default == [0, 1] and params["extra"].default is None
    assert not params["stamp"].has_literal_default and params["stamp"].source == "time.time()"


def test_unknown_name_lists_the_allowed_ones(nb, no_execution, tmp_path):
    with pytest.raises(ValueError) as info:
        run_notebook(nb, {"steps": 2, "temprature": 0.5}, runs_dir=tmp_path / "runs")
    message = str(info.value)
    assert "'temprature'" in message
    assert "allowed: model, steps, temperature, verbose, layers, extra, stamp" in message
    assert not (tmp_path / "runs").exists()


def test_missing_parameters_cell_is_refused_before_running(notebook_factory, no_execution, tmp_path):
    nb = notebook_factory("plain.ipynb", None, "x = 1")
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        run_notebook(nb, {}, runs_dir=tmp_path / "runs")
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        run_notebook(nb, {"x": 2}, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name, value, message", [
    ("steps", "8", r"'steps'.*must be of type int \(like its default 8\), got str '8'"),
    ("steps", 2.5, "'steps'.*must be of type int.*got float"),
    ("steps", True, "'steps'.*must be of type int.*got bool"),
    ("model", 135, "'model'.*must be of type str.*got int"),
    ("temperature", "hot", "'temperature'.*must be of type float.*got str"),
    ("verbose", 1, "'verbose'.*must be of type bool.*got int"),
    ("layers", {"a": 1}, "'layers'.*must be of type list.*got dict"),
])
def test_wrong_type_is_refused_before_running(nb, no_execution, tmp_path, name, value, message):
    with pytest.raises(ValueError, match=message):
        run_notebook(nb, {name: value}, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_compatible_values_are_accepted(nb):
    ok = {"steps": 3, "temperature": 1, "model": "x", "verbose": True, "layers": (2,), "extra": {"a": 1},
          "stamp": "anything"}
    assert set(validate_parameters(nb, ok)) >= set(ok)


def test_two_parameters_cells_and_syntax_errors_are_refused(notebook_factory):
    import nbformat

    path = notebook_factory("two.ipynb", "a = 1", "b = 2")
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].metadata["tags"] = ["parameters"]
    with pytest.raises(ValueError, match="2 cells tagged 'parameters'"):
        notebook_parameters(nb)
    broken = notebook_factory("broken.ipynb", "a = = 1")
    with pytest.raises(ValueError, match="not valid Python"):
        notebook_parameters(broken)


def test_missing_notebook_and_bad_name(tmp_path, nb, no_execution):
    with pytest.raises(FileNotFoundError, match="no such notebook"):
        run_notebook(tmp_path / "missing.ipynb", {})
    with pytest.raises(ValueError, match="name must be a plain file name"):
        run_notebook(nb, {}, runs_dir=tmp_path / "runs", name="../escape")


@pytest.mark.parametrize("text, value", [
    ("8", 8), ("0.5", 0.5), ("1e-3", 0.001), ("true", True), ("null", None), ("None", None),
    ("[1, 2]", [1, 2]), ("{a: 1}", {"a": 1}), ("abc", "abc"), ("", ""), ('"8"', "8"), ("2024-01-01", "2024-01-01"),
])
def test_parse_literal_reads_yaml_json_literals_else_text(text, value):
    parsed = parse_literal(text)
    assert parsed == value and type(parsed) is type(value)


def test_raw_values_follow_the_default_type(nb):
    typed = resolve_parameters(nb, {"model": RawValue("123"), "steps": RawValue("4"), "temperature": RawValue("1"),
                                    "extra": RawValue("[1]")})
    assert typed == {"model": "123", "steps": 4, "temperature": 1, "extra": [1]}
    assert type(typed["model"]) is str
    with pytest.raises(ValueError, match="'steps'.*got str 'four'"):
        resolve_parameters(nb, {"steps": RawValue("four")})


def test_output_names(tmp_path, nb):
    named = output_path_for(nb, {"a": 1}, tmp_path, "first")
    assert named == tmp_path / "p" / "first.ipynb"
    auto = output_path_for(nb, {"a": 1}, tmp_path, None)
    assert auto.parent == tmp_path / "p" and auto.suffix == ".ipynb"
    auto.parent.mkdir(parents=True)
    auto.write_text("{}")
    again = output_path_for(nb, {"a": 1}, tmp_path, None)
    assert again != auto  # an automatic name never overwrites an earlier run (same second, same parameters)
    other = output_path_for(nb, {"a": 2}, tmp_path, None)
    assert other.stem.split("-")[-1] != auto.stem.split("-")[-1]  # the parameter hash differs
