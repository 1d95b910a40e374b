"""notebooks/10_tokenizers.ipynb through papermill: token counts checked with tiktoken and the HF `tokenizers`
library directly, on a tiny model folder (fast) and on the default model (slow)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.experiments import read_figure_scraps

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "10_tokenizers.ipynb"
SCRAPS = {"model", "tokenizers", "heldout_docs", "heldout_bytes", "sample_tokens", "tokens", "bytes_per_token",
          "fertility", "renyi_efficiency", "premium", "bpe", "superbpe", "stochastok", "seconds"}


def heldout_texts(docs: list[str], max_chars: int) -> list[str]:
    """The held-out documents named by the notebook, read from the corpus file with pyarrow."""
    import pyarrow.parquet as pq

    from workbench.assets import get, path

    table = pq.read_table(path("english-prose") / get("english-prose").extra["file"]).to_pydict()
    by_doc = dict(zip(table["doc"], table["text"], strict=True))
    return [by_doc[d][:max_chars] for d in docs]


def tiktoken_counts(asset: str, texts: list[str]) -> list[int]:
    """Token counts from tiktoken itself, reading the asset folder as its cache."""
    import json

    import tiktoken

    from workbench.assets import path

    folder = path(asset)
    encoding = json.loads((folder / "workbench_asset.json").read_text())["encoding"]
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    try:
        enc = tiktoken.get_encoding(encoding)
        return [len(enc.encode(t, disallowed_special=())) for t in texts]
    finally:
        if old is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old


def hf_counts(tokenizer_json, texts: list[str]) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    return [len(tok.encode(t, add_special_tokens=False).ids) for t in texts]


def check_common(scraps: dict, params: dict, own: str, own_json, sample: str) -> None:
    assert set(scraps) == SCRAPS
    texts = heldout_texts(scraps["heldout_docs"], params["max_chars"])
    assert len(texts) == params["n_docs"]
    assert scraps["heldout_bytes"] == sum(len(t.encode("utf-8")) for t in texts)
    assert scraps["tokens"]["gpt2"] == sum(tiktoken_counts("gpt2", texts))
    assert scraps["tokens"][own] == sum(hf_counts(own_json, texts))
    for name, count in scraps["tokens"].items():
        assert scraps["bytes_per_token"][name] == pytest.approx(scraps["heldout_bytes"] / count)
    assert scraps["sample_tokens"]["gpt2"] == tiktoken_counts("gpt2", [sample])[0]
    assert scraps["sample_tokens"][own] == hf_counts(own_json, [sample])[0]
    vocab = params["vocab_size"]
    assert scraps["bpe"]["vocab_size"] <= vocab and scraps["superbpe"]["vocab_size"] <= vocab
    assert scraps["superbpe"]["transition"] == max(256, round(0.75 * vocab))
    reference = params["languages"].split(",")[0]
    for row in scraps["premium"].values():
        assert row[reference] == 1.0


def test_committed_notebook_is_clean_with_small_defaults(nb):
    nb.assert_committed_clean(NOTEBOOK)
    d = nb.defaults(NOTEBOOK)
    assert d["model"] == "smollm2-135m" and d["corpus"] == "english-prose"
    assert d["n_docs"] <= 64 and d["vocab_size"] <= 4096


def test_tokenizers_notebook_on_a_tiny_model_folder(tmp_path, tiny_model_folder, nb):
    params = {"model": str(tiny_model_folder), "tokenizers": "gpt2", "n_docs": 3, "max_chars": 600,
              "vocab_size": 300, "languages": "eng,fra"}
    result, scraps = nb.run(NOTEBOOK, params, tmp_path)
    own = tiny_model_folder.name
    sample = nb.defaults(NOTEBOOK)["sample_text"]
    assert scraps["tokenizers"] == ["gpt2", own, "bpe-300", "superbpe-300"]
    check_common(scraps, params, own, tiny_model_folder / "tokenizer.json", sample)
    # the tiny model's tokenizer is byte-level: one token per byte, and StochasTok has no pair to split into
    assert scraps["tokens"][own] == scraps["heldout_bytes"]
    n = len(sample.encode("utf-8"))
    assert scraps["stochastok"] == {"p": 0.1, "tokens": n, "expanded_tokens": n}
    assert scraps["premium"]["gpt2"]["fra"] > 1.0
    assert read_figure_scraps(result.output_path)["bytes_per_token"].startswith(b"\x89PNG")


@pytest.mark.slow
def test_tokenizers_notebook_on_the_default_model(tmp_path, nb):
    from workbench.assets import path

    d = nb.defaults(NOTEBOOK)
    result, scraps = nb.run(NOTEBOOK, {}, tmp_path)
    check_common(scraps, d, "smollm2-135m", path("smollm2-135m") / "tokenizer.json", d["sample_text"])
    assert scraps["tokens"]["cl100k"] == sum(tiktoken_counts("cl100k", heldout_texts(scraps["heldout_docs"],
                                                                                        d["max_chars"])))
    # o200k was built for many languages; GPT-2's English-centric vocabulary pays far more for Hindi
    assert scraps["premium"]["o200k"]["hin"] < scraps["premium"]["gpt2"]["hin"]
    assert scraps["stochastok"]["expanded_tokens"] >= scraps["stochastok"]["tokens"]
    print(f"10_tokenizers on smollm2-135m: {result.seconds:.1f} s")
