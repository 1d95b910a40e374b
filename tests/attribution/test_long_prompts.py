"""Long-prompt support: memory-bounded chunks give the unchunked results, logits only where scored, KV bytes in
the cost (checked against hand counts of the forwards each method makes)."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.attribution import Contrastive, attribute
from workbench.attribution.chunking import (
    check_budget,
    default_budget,
    plan_chunks,
    row_bytes,
    rows_per_batch,
)
from workbench.attribution.result import Cost, format_bytes

PROMPT = "The cat sat on a mat. It was warm."
HUGE = 10 ** 15  # never splits
TINY = 1  # one row per forward


@pytest.mark.parametrize("method,options", [("occlusion", {}), ("shapley", {"permutations": 4}),
                                            ("kernel_shap", {"samples": 16})])
@pytest.mark.parametrize("target", [" Yes", Contrastive(" Yes", " No")])
def test_chunked_equals_unchunked(llama, method, options, target):
    kw = dict(method=method, granularity="word", batch_size=64, progress=False, **options)
    whole = attribute(llama, PROMPT, target, memory_budget=HUGE, **kw)
    chunked = attribute(llama, PROMPT, target, memory_budget=TINY, **kw)
    np.testing.assert_allclose(chunked.matrix, whole.matrix, atol=2e-5)
    np.testing.assert_allclose(chunked.target_values, whole.target_values, atol=2e-5)
    assert chunked.cost.evaluations == whole.cost.evaluations
    assert chunked.cost.forward_passes > whole.cost.forward_passes  # it really ran in more, smaller batches
    assert chunked.options["memory_budget"] == TINY


def test_integrated_gradients_chunked_equals_unchunked(llama):
    kw = {"method": "integrated_gradients", "steps": 6, "batch_size": 16, "progress": False}
    whole = attribute(llama, PROMPT, " Yes", memory_budget=HUGE, **kw)
    chunked = attribute(llama, PROMPT, " Yes", memory_budget=TINY, **kw)
    assert whole.extras["points_per_batch"] == 8 and chunked.extras["points_per_batch"] == 1
    np.testing.assert_allclose(chunked.matrix, whole.matrix, atol=2e-5)
    assert chunked.cost.forward_passes == 8 and whole.cost.forward_passes == 1


def test_plan_chunks_respects_budget_and_batch_size():
    starts = np.array([9, 9, 7, 5, 5, 2, 0])
    cost = {9: 1, 7: 2, 5: 3, 2: 4, 0: 10}  # bytes per row fed from that start

    def fits(rows, start):
        return rows * cost[start] <= 6

    chunks = plan_chunks(starts, 3, fits)
    assert [c.tolist() for c in chunks] == [[0, 1, 2], [3, 4], [5], [6]]
    assert [c.tolist() for c in plan_chunks(starts, 2, lambda r, s: True)] == [[0, 1], [2, 3], [4, 5], [6]]
    assert plan_chunks(np.array([], dtype=int), 4, fits) == []


def test_row_bytes_grows_with_length_and_grad(llama):
    short, long = row_bytes(llama, 10, 10, 2), row_bytes(llama, 200, 200, 2)
    assert 0 < short < long
    assert row_bytes(llama, 200, 200, 2, grad=True) > long
    # the kept logits: 3 x kept x vocab x 4 bytes
    assert row_bytes(llama, 10, 10, 5) - row_bytes(llama, 10, 10, 2) == 3 * 3 * llama.vocab_size * 4
    assert rows_per_batch(llama, 10 * long, 64, 200, 200, 2) == 10
    assert rows_per_batch(llama, 1, 64, 200, 200, 2) == 1
    assert rows_per_batch(llama, HUGE, 64, 200, 200, 2) == 64
    params = sum(p.numel() * 4 for p in llama.model.parameters())
    assert default_budget(llama) == max(1 << 30, 2 * params)


def test_bad_budget_is_refused_before_work(llama):
    llama.counters.reset()
    for bad in (0, -5, 1.5, "1GB", True):
        with pytest.raises(ValueError, match="memory_budget must be None"):
            attribute(llama, PROMPT, " Yes", method="occlusion", memory_budget=bad, progress=False)
    assert llama.counters.forward_calls == 0
    assert check_budget(None) is None and check_budget(np.int64(7)) == 7


@pytest.mark.parametrize("method,target", [("occlusion", " Yes"), ("occlusion", Contrastive(" Yes", " No")),
                                           ("input_x_gradient", " Yes"), ("integrated_gradients", " Yes")])
def test_logits_only_at_scored_positions(llama, method, target, monkeypatch):
    widths = []
    forward = llama.forward

    def spy(*args, **kwargs):
        out = forward(*args, **kwargs)
        widths.append(out.logits.shape[1])
        return out

    monkeypatch.setattr(llama, "forward", spy)
    options = {"steps": 2} if method == "integrated_gradients" else {}
    attribute(llama, PROMPT, target, method=method, progress=False, **options)
    assert widths and max(widths) <= len(" Yes") + 1  # never the prompt's 34 positions


def kv_bytes(lm):
    return lm.num_layers * 2 * lm.num_kv_heads * lm.head_dim * 4


def test_kv_bytes_of_one_forward(llama):
    a = attribute(llama, PROMPT, " Yes", method="input_x_gradient", progress=False)
    total = len(PROMPT) + len(" Yes")  # byte tokens; one forward over prompt + continuation, empty cache
    assert a.cost.kv_bytes_written == a.cost.kv_bytes_read == total * kv_bytes(llama)


def test_kv_bytes_of_occlusion_by_hand(llama):
    n, c = len(PROMPT), len(" Yes")
    b = kv_bytes(llama)
    fresh = attribute(llama, PROMPT, " Yes", method="occlusion", reuse_prefix=False, batch_size=1, progress=False)
    # n + 1 inputs, each one forward of n + c tokens over an empty cache
    assert fresh.cost.kv_bytes_written == fresh.cost.kv_bytes_read == (n + 1) * (n + c) * b
    reused = attribute(llama, PROMPT, " Yes", method="occlusion", batch_size=1, progress=False)
    # the prompt once (n written and read), then input i (token i removed, or none: start n - 1) feeds
    # n - start + c tokens over `start` cached positions: reads n + c, writes n - start + c
    starts = list(range(n)) + [n - 1]
    assert reused.cost.kv_bytes_written == (n + sum(n - s + c for s in starts)) * b
    assert reused.cost.kv_bytes_read == (n + len(starts) * (n + c)) * b
    assert reused.cost.kv_bytes_written == reused.cost.tokens_processed * b


def test_kv_bytes_are_rendered(llama):
    a = attribute(llama, PROMPT, " Yes", method="occlusion", granularity="word", batch_size=1, progress=False)
    d = a.cost.to_dict()
    assert d["kv_bytes_read"] > d["kv_bytes_written"] > 0
    assert f"KV {format_bytes(d['kv_bytes_written'])} written" in repr(a)
    assert f"KV {format_bytes(d['kv_bytes_read'])} read" in a._repr_html_()
    assert a.to_dict()["cost"]["kv_bytes_read"] == d["kv_bytes_read"]
    assert Cost().to_dict()["kv_bytes_written"] == 0
    assert [format_bytes(x) for x in (0, 1023, 1024, 3 << 20)] == ["0 B", "1023 B", "1.0 KiB", "3.0 MiB"]


@pytest.mark.slow
def test_real_model_chunked_occlusion_equals_unchunked(real_lm):
    prompt = "The printing press came to Europe late. Movable type was older in China."
    kw = {"method": "occlusion", "granularity": "word", "progress": False}
    whole = attribute(real_lm, prompt, " Gutenberg", memory_budget=HUGE, batch_size=64, **kw)
    chunked = attribute(real_lm, prompt, " Gutenberg", memory_budget=TINY, **kw)
    np.testing.assert_allclose(chunked.matrix, whole.matrix, atol=1e-4)
    assert chunked.cost.forward_passes > whole.cost.forward_passes
    assert chunked.cost.kv_bytes_read > chunked.cost.kv_bytes_written == chunked.cost.tokens_processed * (
        real_lm.kv_bytes_per_token)
