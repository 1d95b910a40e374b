"""Data mixture inference on real assets (slow): a known English / Spanish / code mixture recovered from a
tokenizer trained here (held-out samples; the step-slack-only LP misses it at the same scale), and merge
lists recovered from tiktoken ranks checked against the published merge files."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.tokenization.bpe_train import train_bpe
from workbench.tokenization.hf import bytes_to_unicode
from workbench.tokenization.mixture import infer_mixture, merges_of
from workbench.tokenization.mixture_data import held_out, load_categories, mix_by_bytes
from workbench.tokenization.mixture_merges import unicode_form_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def categories():
    return load_categories(("english", "spanish", "code"))


def test_known_mixture_recovered_where_step_slack_alone_fails(categories):
    # 300 KB, 344 merges, 100 KB held-out samples: the smallest real configuration found where the
    # step-slack-only LP is off by more than 5 points (code ~0.50 for 0.60)
    train, truth = mix_by_bytes(categories, {"english": 0.2, "spanish": 0.2, "code": 0.6}, 300_000)
    merges, pattern = merges_of(train_bpe(train, 600, progress=False).tokenizer)
    samples = held_out(categories, 100_000)
    fixed = infer_mixture(merges, samples, pattern=pattern, top_k=30, progress=False)
    step_only = infer_mixture(merges, samples, pattern=pattern, top_k=30, progress=False, pair_slack=False)
    assert max(fixed.errors(truth).values()) <= 0.05, fixed.proportions
    assert max(step_only.errors(truth).values()) > 0.05, step_only.proportions


def test_r50k_ranks_give_gpt2_merges():
    """r50k_base's tiktoken ranks -> merges (BPE on each token's bytes with lower ranks) equal GPT-2's
    published vocab.bpe (the merges of its tokenizer.json), in order."""
    from workbench.assets import path

    folder = Path(path("gpt2"))
    bpe_files = [f for f in folder.iterdir() if f.is_file() and f.read_bytes()[:8] == b"#version"]
    assert len(bpe_files) == 1
    back = {ch: b for b, ch in bytes_to_unicode().items()}
    lines = bpe_files[0].read_text(encoding="utf-8").splitlines()[1:]
    expected = [tuple(bytes(back[ch] for ch in part) for part in line.split(" ")) for line in lines if line]
    merges, _ = merges_of("r50k")
    assert len(expected) == 50_000
    assert merges == expected


def test_llama3_merges_extend_cl100k():
    """Llama-3's tokenizer.json lists every split of each token (280k merges); recovered from its ranks,
    its first 100k merges are cl100k's."""
    llama, _ = merges_of("llama3")
    cl100k, _ = merges_of("cl100k")
    assert len(cl100k) == 100_000 and len(llama) > len(cl100k)
    assert llama[: len(cl100k)] == cl100k


def test_unicode_forms_of_real_tokenizers():
    assert unicode_form_of("qwen3") == "NFC"
    assert unicode_form_of("llama3") is None
    assert unicode_form_of("cl100k") is None
