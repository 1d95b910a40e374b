"""Smoke tests on the real default model (SmolLM2-135M): shapes, costs, finiteness, offsets."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.attribution import Contrastive, attribute

pytestmark = pytest.mark.slow

PROMPT, TARGET = "The capital of France is", " Paris"


@pytest.fixture(scope="module")
def ids(real_lm):
    return real_lm.tokenizer.encode(PROMPT), real_lm.tokenizer.encode(TARGET)


def check(a, n_sources, n_targets):
    data = PROMPT.encode()
    assert a.matrix.shape == (n_targets, n_sources) and np.all(np.isfinite(a.matrix))
    assert np.all(np.isfinite(a.target_values))
    assert b"".join(data[s.start:s.end] for s in a.sources) == data  # the sources tile the prompt
    assert a.cost.forward_passes > 0 and a.cost.tokens_processed > 0 and a.cost.seconds > 0


def test_saliency(real_lm, ids):
    src, tgt = ids
    a = attribute(real_lm, PROMPT, TARGET, method="saliency", progress=False)
    check(a, len(src), len(tgt))
    assert a.cost.forward_passes == 1 and a.cost.backward_passes == len(tgt)
    assert a.cost.tokens_processed == len(src) + len(tgt)
    assert a.target_values[0] > -5  # " Paris" is likely after this prompt


def test_occlusion_with_and_without_kv_reuse(real_lm, ids):
    src, tgt = ids
    a = attribute(real_lm, PROMPT, TARGET, method="occlusion", batch_size=3, progress=False)
    b = attribute(real_lm, PROMPT, TARGET, method="occlusion", batch_size=3, reuse_prefix=False, progress=False)
    check(a, len(src), len(tgt))
    np.testing.assert_allclose(a.matrix, b.matrix, atol=1e-4)
    assert a.cost.evaluations == len(src) + 1 and a.cost.tokens_processed < b.cost.tokens_processed
    assert [s.text for s in a.sources] == ["The", " capital", " of", " France", " is"]
    assert a.matrix[0, 3] > max(a.matrix[0, 0], a.matrix[0, 2])  # " France" matters more than "The", " of"


def test_integrated_gradients(real_lm, ids):
    src, tgt = ids
    a = attribute(real_lm, PROMPT, TARGET, method="integrated_gradients", steps=8, batch_size=10, progress=False)
    check(a, len(src), len(tgt))
    assert a.cost.evaluations == 10 and a.cost.forward_passes == 1 and a.cost.backward_passes == len(tgt)
    assert np.isfinite(a.extras["max_relative_gap"])


def test_shapley_by_word_on_a_contrast(real_lm):
    a = attribute(real_lm, PROMPT, Contrastive(" Paris", " Rome"), method="shapley", granularity="word",
                  permutations=8, batch_size=32, progress=False)
    check(a, 5, 1)
    assert a.stderr().shape == (1, 5) and np.all(np.isfinite(a.stderr()))
    full, empty = a.target_values[0], a.extras["empty_values"][0]
    np.testing.assert_allclose(a.matrix.sum(), full - empty, atol=1e-4)  # efficiency holds per permutation
