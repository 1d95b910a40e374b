"""notebooks/40_speculative_decoding.ipynb through papermill: every drafter's output equals LM.generate's
greedy output (recomputed here), and tau / acceptance / forward calls are recomputed from the recorded steps."""
from __future__ import annotations

from pathlib import Path

import pytest

from workbench.experiments import read_figure_scraps

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "40_speculative_decoding.ipynb"
SCRAPS = {"model", "prompts", "greedy_new_ids", "greedy_forward_calls", "results", "steps", "speculative_new_ids",
          "tree_step", "seconds"}


def check_common(scraps: dict, lm, max_new_tokens: int, drafters: list[str]) -> None:
    assert set(scraps) == SCRAPS
    for task, prompt in scraps["prompts"].items():
        expected = lm.generate(prompt, max_new_tokens=max_new_tokens)
        assert scraps["greedy_new_ids"][task] == expected.new_ids
        assert scraps["greedy_forward_calls"][task] == expected.forward_calls
        for name in drafters:
            assert scraps["speculative_new_ids"][f"{task}/{name}"] == expected.new_ids
    for row in scraps["results"]:
        if row["method"] == "greedy":
            continue
        steps = scraps["steps"][f"{row['task']}/{row['method']}"]
        assert row["forward_calls"] == len(steps) + 1  # the prefill, then one target forward per step
        assert row["tau"] == pytest.approx(sum(len(s["tokens"]) for s in steps) / len(steps))
        drafted = sum(s["drafted"] for s in steps)
        accepted = sum(s["accepted"] for s in steps)
        assert row["acceptance"] == pytest.approx(accepted / drafted if drafted else 0.0)
        assert row["new_tokens"] <= sum(len(s["tokens"]) for s in steps)
    # the shown tree: parents before children, and the accepted tokens form a root-to-node path in it
    tree = scraps["tree_step"]
    step = scraps["steps"][f"{tree['task']}/{tree['drafter']}"][tree["step"]]
    assert all(-1 <= p < i for i, p in enumerate(tree["parents"]))
    node = -1
    for token in step["tokens"][:tree["accepted"]]:
        node = next(i for i, (t, p) in enumerate(zip(tree["tokens"], tree["parents"])) if p == node and t == token)


def test_committed_notebook_is_clean_with_small_defaults(nb):
    nb.assert_committed_clean(NOTEBOOK)
    d = nb.defaults(NOTEBOOK)
    assert d["model"] == "smollm2-135m" and d["max_new_tokens"] <= 64


def test_speculative_notebook_on_a_tiny_model_folder(tmp_path, tiny_model_folder, nb):
    from workbench.models import LM

    drafters = ["prompt_lookup", "token_recycling"]
    params = {"model": str(tiny_model_folder), "prompt": "one two three, one two three, one two", "drafters": ",".join(drafters),
              "max_new_tokens": 12, "budget": 4, "threads": 1}
    result, scraps = nb.run(NOTEBOOK, params, tmp_path)
    check_common(scraps, LM.load(tiny_model_folder), 12, drafters)
    assert [(r["task"], r["method"]) for r in scraps["results"]] == [("custom", "greedy")] + [
        ("custom", d) for d in drafters]
    assert all(s["drafted"] <= 4 for steps in scraps["steps"].values() for s in steps)
    assert read_figure_scraps(result.output_path)["accepted_per_step"].startswith(b"\x89PNG")


@pytest.mark.slow
def test_speculative_notebook_on_the_default_model(tmp_path, nb):
    from workbench.models import LM

    d = nb.defaults(NOTEBOOK)
    result, scraps = nb.run(NOTEBOOK, {"threads": 1}, tmp_path)
    check_common(scraps, LM.load("smollm2-135m"), d["max_new_tokens"], d["drafters"].split(","))
    rows = {(r["task"], r["method"]): r for r in scraps["results"]}
    # copying the passage is what prompt lookup is for: well over one token per target forward
    assert rows[("quote", "prompt_lookup")]["tau"] > 1.5
    assert rows[("quote", "prompt_lookup")]["forward_calls"] < rows[("quote", "greedy")]["forward_calls"]
    print(f"40_speculative_decoding on smollm2-135m: {result.seconds:.1f} s (1 thread); "
          + ", ".join(f"{t}/{m} speedup {r['speedup']:.2f}" for (t, m), r in rows.items() if m != "greedy"))
