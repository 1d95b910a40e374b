"""The quickstart notebook through papermill: on a tiny random model folder (fast) and on the default model."""
from pathlib import Path

import nbformat
import pytest

from workbench.experiments import (
    notebook_parameters,
    read_figure_scraps,
    read_scraps,
    run_notebook,
)

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "00_quickstart.ipynb"
SCRAPS = {"model", "prompt_tokens", "new_tokens", "generated_text", "tokens_per_second", "load_seconds",
          "forward_calls", "stop_reason"}


def test_committed_notebook_has_the_agreed_parameters_and_no_outputs():
    params = notebook_parameters(QUICKSTART)
    assert {k: p.default for k, p in params.items()} == {
        "model": "smollm2-135m", "prompt": params["prompt"].default, "max_new_tokens": 32,
        "temperature": 0.0, "seed": 0}
    assert isinstance(params["prompt"].default, str) and params["prompt"].default
    nb = nbformat.read(QUICKSTART, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)


def test_quickstart_on_a_tiny_model_folder(tmp_path):
    from workbench.models.tiny import save_tiny_model

    folder = save_tiny_model(tmp_path / "tiny-llama", arch="llama", seed=0)
    prompt = "Hi, tokens!"
    result = run_notebook(QUICKSTART, {"model": str(folder), "prompt": prompt, "max_new_tokens": 5},
                          runs_dir=tmp_path / "runs", progress=False)
    assert result.ok, result.error
    scraps = read_scraps(result.output_path)
    assert set(scraps) == SCRAPS
    assert scraps["model"] == str(folder)
    assert scraps["prompt_tokens"] == len(prompt.encode("utf-8"))  # the tiny models tokenize bytes
    assert 1 <= scraps["new_tokens"] <= 5
    # greedy decoding of the same seeded model in this process gives the same text
    from workbench.models import LM

    expected = LM.load(folder).generate(prompt, max_new_tokens=5, temperature=0.0)
    assert scraps["generated_text"] == expected.text
    assert scraps["forward_calls"] == expected.forward_calls
    assert scraps["tokens_per_second"] > 0 and scraps["load_seconds"] > 0
    assert read_figure_scraps(result.output_path)["next_token_top10"].startswith(b"\x89PNG")


@pytest.mark.slow
def test_quickstart_on_the_default_model(tmp_path):
    result = run_notebook(QUICKSTART, {"max_new_tokens": 16}, runs_dir=tmp_path / "runs", progress=False)
    assert result.ok, result.error
    scraps = read_scraps(result.output_path)
    assert set(scraps) == SCRAPS
    assert scraps["model"] == "smollm2-135m"
    from tokenizers import (
        Tokenizer,  # the HF tokenizers library on the asset's own tokenizer.json
    )

    from workbench.assets import path

    reference = Tokenizer.from_file(str(path("smollm2-135m") / "tokenizer.json"))
    assert scraps["prompt_tokens"] == len(reference.encode("The capital of France is", add_special_tokens=False).ids)
    assert 1 <= scraps["new_tokens"] <= 16
    assert "Paris" in scraps["generated_text"]
    print(f"quickstart on smollm2-135m: {result.seconds:.1f} s, load {scraps['load_seconds']} s, "
          f"{scraps['tokens_per_second']} tokens/s")
