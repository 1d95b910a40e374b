"""Fixtures for the view tests: a tiny seeded LM (byte tokenizer) and a small trained BPE tokenizer."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny():
    from workbench.models.tiny import tiny_lm

    return tiny_lm("llama", seed=0)


@pytest.fixture(scope="session")
def bpe():
    """A byte-level BPE trained on a few sentences, wrapped in the workbench Tokenizer protocol."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from workbench.tokenization import load_tokenizer

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(["Hello world, hello tokens. The world of tokens is wide."] * 5, trainer)
    return load_tokenizer(backend)
