"""The Explorer's KV selection tab on the tiny seeded LM: the strip shows the context of the chosen decode step
(prompt + generated tokens, checked against a separate sparse_generate), kept tokens carry a score and dropped
ones none, and the kept set / recall match known answers (StreamingLLM positions, the oracle's own recall)."""
import pytest

from workbench.sparse import sparse_generate
from workbench.views import Explorer, Table, TokenStrip

TEXT = "Hello world, this is a test of sparse attention."


def kept_positions(strip):
    return [i for i, s in enumerate(strip.scores) if s is not None]


def test_streaming_llm_keeps_sinks_and_the_recent_window(tiny):
    explorer = Explorer(tiny, TEXT, tab="sparse", autorun=False)
    strip, summary, steps = explorer.run(policy="streaming_llm", budget=10, layer=1, head=3, step=1,
                                         max_new_tokens=4)
    assert isinstance(strip, TokenStrip) and isinstance(summary, Table) and isinstance(steps, Table)
    prompt = tiny.tokenizer.encode(TEXT, add_special_tokens=True)
    new = sparse_generate(tiny, prompt, "streaming_llm", budget=10, max_new_tokens=4).generation.new_ids
    ids = prompt + list(new[:2])
    assert [t.id for t in strip.tokens] == ids
    n = len(ids)
    assert kept_positions(strip) == [0, 1, 2, 3, *range(n - 6, n)]
    row = summary.records()[0]
    assert (row["kept"], row["context"], row["KV head"]) == (10, n, 3 // (tiny.num_heads // tiny.num_kv_heads))
    assert 0 < row["recall"] <= row["oracle recall"] + 1e-6 <= 1 + 1e-6
    assert [r["context"] for r in steps.records()] == [len(prompt) + 1, len(prompt) + 2, len(prompt) + 3]


def test_oracle_recall_equals_itself_and_full_keeps_everything(tiny):
    explorer = Explorer(tiny, TEXT, tab="sparse", autorun=False)
    _, summary, _ = explorer.run(policy="oracle", budget=8)
    assert summary.records()[0]["recall / oracle"] == pytest.approx(1.0, abs=1e-6)
    strip, summary, _ = explorer.run(policy="full", budget=1024)
    assert kept_positions(strip) == list(range(len(strip.tokens)))
    assert summary.records()[0]["recall"] == pytest.approx(1.0, abs=1e-6)
    assert "clipped from 1024" in strip.title


def test_kept_scores_are_probabilities_that_sum_to_the_recall(tiny):
    explorer = Explorer(tiny, TEXT, tab="sparse", autorun=False)
    strip, summary, _ = explorer.run(policy="h2o", budget=12, head=1, step=2)
    kept = [s for s in strip.scores if s is not None]
    assert len(kept) == 12
    assert sum(kept) == pytest.approx(summary.records()[0]["recall"], abs=1e-5)


def test_bad_input_lands_in_the_widget(tiny):
    explorer = Explorer(tiny, "", tab="sparse")
    assert "text: is empty" in explorer.error
    with pytest.raises(ValueError, match="step: 3 new tokens give decode steps 0..1"):
        explorer.run(text=TEXT, step=2, max_new_tokens=3)
    assert "step:" in explorer.bar.error
    with pytest.raises(ValueError, match="policy: must be one of"):
        explorer.run(policy="h3o")
