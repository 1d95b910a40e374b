"""notebooks/30_sparse_attention.ipynb through papermill: the dense reference equals LM.generate, the `full`
policy reads exactly the dense bytes, StreamingLLM's bytes follow from its budget by hand, and agreement is
recomputed from the recorded tokens."""
from __future__ import annotations

from pathlib import Path

import pytest

from workbench.experiments import read_figure_scraps

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "30_sparse_attention.ipynb"
SCRAPS = {"model", "prompt", "prompt_tokens", "layer", "dense_new_ids", "dense_text", "full_bytes_ratio", "results",
          "sparse_new_ids", "seconds"}


def prefix_agreement(ids: list[int], reference: list[int]) -> float:
    n = next((i for i, (a, b) in enumerate(zip(ids, reference)) if a != b), min(len(ids), len(reference)))
    return n / len(reference)


def check_common(scraps: dict, lm, max_new_tokens: int) -> None:
    assert set(scraps) == SCRAPS
    dense = lm.generate(scraps["prompt"], max_new_tokens=max_new_tokens)
    assert scraps["dense_new_ids"] == dense.new_ids
    assert scraps["prompt_tokens"] == len(lm.tokenizer.encode(scraps["prompt"], add_special_tokens=True))
    assert scraps["full_bytes_ratio"] == 1.0
    for row in scraps["results"]:
        ids = scraps["sparse_new_ids"][f"{row['policy']}@{row['budget']}"]
        assert row["agreement"] == pytest.approx(prefix_agreement(ids, dense.new_ids))
        assert 0.0 <= row["recall"] <= row["oracle_recall"] + 1e-6
        if row["policy"] == "quest" and lm.num_layers <= 2:
            assert row["bytes_ratio"] == 1.0  # Quest's dense first two layers (as in the paper) are the whole model
        else:
            assert 0.0 < row["bytes_ratio"] < 1.0


def streaming_bytes_ratio(lm, prompt_tokens: int, new_tokens: int, budget: int) -> float:
    """StreamingLLM reads `budget` K and V rows (+ one 4-byte index each) per KV head and layer at every decode
    step; dense reads the whole context. Decode steps are the forwards after the prefill."""
    row = 2 * lm.head_dim * 4  # K and V, fp32
    read = dense = 0
    for step in range(1, new_tokens):
        context = prompt_tokens + step
        read += min(budget, context) * (row + 4)
        dense += context * row
    return read / dense


def test_committed_notebook_is_clean_with_small_defaults(nb):
    nb.assert_committed_clean(NOTEBOOK)
    d = nb.defaults(NOTEBOOK)
    assert d["model"] == "smollm2-135m" and d["max_new_tokens"] <= 32


def test_sparse_notebook_on_a_tiny_model_folder(tmp_path, tiny_model_folder, nb):
    from workbench.models import LM

    params = {"model": str(tiny_model_folder), "prompt_chars": 120, "policies": "streaming_llm,quest,h2o",
              "budgets": "8,32", "max_new_tokens": 6, "threads": 1, "layer": 1}
    result, scraps = nb.run(NOTEBOOK, params, tmp_path)
    lm = LM.load(tiny_model_folder)
    check_common(scraps, lm, 6)
    assert scraps["layer"] == 1
    rows = {(r["policy"], r["budget"]): r for r in scraps["results"]}
    assert set(rows) == {(p, b) for p in ("streaming_llm", "quest", "h2o") for b in (8, 32)}
    for budget in (8, 32):
        got = rows[("streaming_llm", budget)]["bytes_ratio"]
        assert got == pytest.approx(streaming_bytes_ratio(lm, scraps["prompt_tokens"], 6, budget))
    figures = read_figure_scraps(result.output_path)
    assert figures["agreement_vs_budget"].startswith(b"\x89PNG")
    assert figures["recall_vs_budget"].startswith(b"\x89PNG")


@pytest.mark.slow
def test_sparse_notebook_on_the_default_model(tmp_path, nb):
    from workbench.models import LM

    d = nb.defaults(NOTEBOOK)
    result, scraps = nb.run(NOTEBOOK, {"threads": 1}, tmp_path)
    check_common(scraps, LM.load("smollm2-135m"), d["max_new_tokens"])
    budgets = [int(b) for b in d["budgets"].split(",")]
    for policy in d["policies"].split(","):
        ratios = [r["bytes_ratio"] for b in budgets for r in scraps["results"]
                  if r["policy"] == policy and r["budget"] == b]
        assert ratios == sorted(ratios), f"{policy}: more budget must read more bytes"
    print(f"30_sparse_attention on smollm2-135m: {result.seconds:.1f} s (1 thread)")
