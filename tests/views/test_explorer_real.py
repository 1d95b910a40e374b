"""The Explorer on the real default model (SmolLM2-135M) and a real second tokenizer (cl100k)."""
import math

import pytest
import torch

from workbench.views import Explorer

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.mark.slow
def test_tokenization_tab_on_the_default_model():
    from workbench.models import LM
    from workbench.tokenization import load_tokenizer

    lm = LM.load("smollm2-135m")
    explorer = Explorer(lm, TEXT)
    assert explorer.bar.error == ""
    strip, table = explorer.views
    ids = lm.tokenizer.encode(TEXT)
    assert [t.id for t in strip.tokens] == ids
    assert b"".join(t.bytes for t in strip.tokens) == TEXT.encode()
    with torch.no_grad():  # spot-check surprisal at the last token with a forward pass over its prefix only
        logits = lm.forward(torch.tensor([ids[:-1]])).logits[0, -1].double()
    want = -torch.log_softmax(logits, -1)[ids[-1]].item() / math.log(2)
    assert strip.scores[-1] == pytest.approx(want, abs=1e-3)

    explorer.run(tokenizer="cl100k")
    strip, table = explorer.views
    assert [t.id for t in strip.tokens] == load_tokenizer("cl100k").encode(TEXT)
    assert [r["tokenizer"] for r in table.records()] == [f"lm ({lm.tokenizer.name})", "cl100k"]

    explorer.run(tokenizer="lm", max_new_tokens=8)
    expected = lm.generate(ids, max_new_tokens=8, temperature=0.0, seed=0).new_ids
    assert [t.id for t in explorer.views[0].tokens] == ids + list(expected)
