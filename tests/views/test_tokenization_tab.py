"""The Explorer's tokenization tab on the tiny seeded LM: strip under the LM tokenizer with surprisal scores
(checked against one forward pass per prefix), generation (checked against lm.generate), other tokenizers."""
import math

import pytest
import torch

from workbench.views import Explorer, Table, TokenStrip
from workbench.views.tabs.tokenization import surprisal_bits

from .helpers import frontend_custom

TEXT = "Hello world"


def brute_force_surprisal(lm, ids):
    """-log2 p(ids[t] | ids[:t]) from a separate forward pass over each prefix."""
    out = [None]
    for t in range(1, len(ids)):
        with torch.no_grad():
            logits = lm.forward(torch.tensor([ids[:t]])).logits[0, -1]
        out.append(-torch.log_softmax(logits.double(), -1)[ids[t]].item() / math.log(2))
    return out


def test_surprisal_matches_prefix_by_prefix_forward_passes(tiny):
    ids = tiny.tokenizer.encode(TEXT)
    got, want = surprisal_bits(tiny, ids), brute_force_surprisal(tiny, ids)
    assert got[0] is None and len(got) == len(ids)
    assert got[1:] == pytest.approx(want[1:], abs=1e-4)
    with pytest.raises(ValueError, match="exceed the model's context of 256"):
        surprisal_bits(tiny, [1] * 300)


def test_default_run_shows_the_text_under_the_lm_tokenizer(tiny):
    explorer = Explorer(tiny, TEXT)
    strip, table = explorer.views
    assert isinstance(strip, TokenStrip) and isinstance(table, Table)
    ids = tiny.tokenizer.encode(TEXT)
    assert [t.id for t in strip.tokens] == ids
    assert b"".join(t.bytes for t in strip.tokens) == TEXT.encode()
    assert strip.scores[1:] == pytest.approx(brute_force_surprisal(tiny, ids)[1:], abs=1e-4)
    assert strip.score_label == "surprisal (bits)"
    assert table.records() == [{"tokenizer": "lm (tiny-bytes)", "tokens": 11, "bytes": 11, "bytes/token": 1.0}]


def test_generate_control_appends_lm_generate_output(tiny):
    explorer = Explorer(tiny, TEXT)
    frontend_custom(explorer.bar, {"type": "run", "values": {"max_new_tokens": 6, "colour": "none"}})
    assert explorer.bar.error == ""
    prompt = tiny.tokenizer.encode(TEXT)
    expected = tiny.generate(prompt, max_new_tokens=6, temperature=0.0, seed=0).new_ids
    strip, counts, generation = explorer.views
    assert [t.id for t in strip.tokens] == prompt + list(expected)
    assert all(s is None for s in strip.scores)
    assert generation.records()[0]["new tokens"] == len(expected)
    assert generation.records()[0]["forward calls"] >= 1
    n_bytes = len(TEXT) + sum(len(tiny.tokenizer.token_bytes(i)) for i in expected)
    assert counts.records() == [{"tokenizer": "lm (tiny-bytes)", "tokens": len(prompt) + len(expected),
                                 "bytes": n_bytes, "bytes/token": n_bytes / (len(prompt) + len(expected))}]


def test_other_tokenizers_are_offered_and_compared(tiny, bpe):
    backend = bpe.backend  # a raw tokenizers.Tokenizer: the tab wraps it with load_tokenizer
    explorer = Explorer(tiny, TEXT, options={"tokenization": {"tokenizers": {"tiny-bpe": backend}}})
    menu = next(c for c in explorer.bar.controls if c["name"] == "tokenizer")
    assert [o["value"] for o in menu["options"]][:2] == ["lm", "tiny-bpe"]
    explorer.run(tokenizer="tiny-bpe")
    strip, table = explorer.views
    assert [t.id for t in strip.tokens] == bpe.encode(TEXT)
    assert strip.scores == [None] * len(strip.tokens)  # surprisal is only defined under the LM's tokenizer
    counts = {r["tokenizer"]: r["tokens"] for r in table.records()}
    assert counts == {"lm (tiny-bytes)": 11, "tiny-bpe": len(bpe.encode(TEXT))}


def test_tab_errors_land_in_the_widget(tiny):
    explorer = Explorer(tiny, "")
    assert explorer.bar.status == "error" and "text: is empty" in explorer.bar.error
    frontend_custom(explorer.bar, {"type": "run", "values": {"tokenizer": "no-such-tokenizer"}})
    assert "tokenizer: must be one of ['lm'" in explorer.bar.error
    frontend_custom(explorer.bar, {"type": "run", "text": "ok", "values": {}})
    assert explorer.bar.status == "done" and len(explorer.views[0].tokens) == 2
