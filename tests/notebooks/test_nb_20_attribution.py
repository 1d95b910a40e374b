"""notebooks/20_attribution.ipynb through papermill: on a tiny model folder (fast, scraps checked against a
recomputation in this process) and on the default model (slow)."""
from pathlib import Path

import nbformat
import pytest

from workbench.experiments import (
    notebook_parameters,
    read_figure_scraps,
    read_scraps,
    run_notebook,
)

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "20_attribution.ipynb"
SCRAPS = {"model", "methods", "n_sources", "n_targets", "aopc", "soft", "cost", "faithfulness_seconds"}


def test_committed_notebook_has_its_parameters_and_no_outputs():
    params = {k: p.default for k, p in notebook_parameters(NOTEBOOK).items()}
    assert set(params) == {"model", "prompt", "target", "methods", "granularity", "soft_samples", "seed"}
    assert params["model"] == "smollm2-135m" and len(params["methods"].split(",")) in (3, 4)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")


def test_on_a_tiny_model_folder(tmp_path):
    from workbench.attribution import attribute
    from workbench.attribution.faithfulness import faithfulness
    from workbench.models import LM
    from workbench.models.tiny import save_tiny_model

    folder = save_tiny_model(tmp_path / "tiny-llama", arch="llama", seed=0)
    params = {"model": str(folder), "prompt": "Hi there.", "target": " ok", "methods": "occlusion, saliency",
              "granularity": "word", "soft_samples": 2}
    result = run_notebook(NOTEBOOK, params, runs_dir=tmp_path / "runs", progress=False)
    assert result.ok, result.error
    scraps = read_scraps(result.output_path)
    assert set(scraps) == SCRAPS
    assert scraps["methods"] == ["occlusion", "saliency"]
    assert (scraps["n_sources"], scraps["n_targets"]) == (2, 3)  # words "Hi", " there."; bytes " ", "o", "k"
    lm = LM.load(folder)
    a = attribute(lm, "Hi there.", " ok", method="occlusion", granularity="word", progress=False)
    want = faithfulness(lm, a, soft_samples=2).aggregated()
    assert scraps["aopc"]["occlusion"]["comprehensiveness"] == pytest.approx(want["comprehensiveness"], abs=1e-5)
    assert scraps["aopc"]["occlusion"]["sufficiency"] == pytest.approx(want["sufficiency"], abs=1e-5)
    assert scraps["soft"]["occlusion"]["soft_sufficiency"] == pytest.approx(want["soft_sufficiency"], abs=1e-5)
    assert scraps["cost"]["occlusion"]["forward_passes"] == a.cost.forward_passes
    assert scraps["cost"]["saliency"]["backward_passes"] >= 1 and scraps["cost"]["saliency"]["seconds"] > 0
    assert read_figure_scraps(result.output_path)["deletion_curves"].startswith(b"\x89PNG")


def test_unknown_method_fails_before_loading(tmp_path):
    result = run_notebook(NOTEBOOK, {"model": str(tmp_path / "missing"), "methods": "occlusion,nope"},
                          runs_dir=tmp_path / "runs", progress=False)
    assert not result.ok and "methods: unknown ['nope']" in str(result.error)


@pytest.mark.slow
def test_on_the_default_model(tmp_path):
    result = run_notebook(NOTEBOOK, {}, runs_dir=tmp_path / "runs", progress=False)
    assert result.ok, result.error
    scraps = read_scraps(result.output_path)
    assert set(scraps) == SCRAPS and len(scraps["methods"]) == 4
    for name in scraps["methods"]:
        assert scraps["cost"][name]["forward_passes"] >= 1
        assert -1.0 <= scraps["aopc"][name]["comprehensiveness"] <= 1.0
    assert result.seconds < 180, f"the notebook must stay around 2 minutes on CPU, took {result.seconds:.0f} s"
    print(f"20_attribution on smollm2-135m: {result.seconds:.1f} s; aopc {scraps['aopc']}; cost {scraps['cost']}")
