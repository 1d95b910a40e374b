"""topk_select: the reference against a brute-force ranking, argument checks, dispatch and fallback (CPU)."""
import importlib

import pytest
import torch

from workbench.kernels import KernelFallbackWarning, decide, get_op, topk_select
from workbench.kernels.topk_select import (
    KERNEL_DTYPES,
    PAD,
    kernel_name,
    topk_select_reference,
)
from workbench.sparse.ranking import top_k_lex

OP = "topk_select"
dispatch_module = importlib.import_module("workbench.kernels.dispatch")


def bruteforce(scores: torch.Tensor, ks: list[int], ties: str) -> torch.Tensor:
    """Per row: positions ordered by (score desc, position asc or desc) in plain Python, first k, sorted."""
    batch, kv_heads, seq = scores.shape
    values = scores.double().tolist()
    out = torch.full((batch, kv_heads, max(ks)), PAD, dtype=torch.long)
    for b in range(batch):
        for g in range(kv_heads):
            row = values[b][g]
            sign = 1 if ties == "lower" else -1
            chosen = sorted(sorted(range(seq), key=lambda i: (-row[i], sign * i))[:ks[g]])
            out[b, g, :len(chosen)] = torch.tensor(chosen, dtype=torch.long)
    return out


def tied_scores(batch: int, kv_heads: int, seq: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Scores with many exact ties, both zeros, infinities, negatives."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randint(-3, 4, (batch, kv_heads, seq), generator=gen).float() * 0.5
    flat = scores.view(-1)
    picks = torch.randperm(flat.numel(), generator=gen)[:8]
    flat[picks[0]], flat[picks[1]] = float("inf"), float("-inf")
    flat[picks[2:5]] = -0.0
    return scores.to(dtype)


@pytest.mark.parametrize("ties", ["lower", "higher"])
@pytest.mark.parametrize("seq", [27, 61, 1110])
def test_reference_matches_bruteforce_with_ties(seq, ties):
    scores = tied_scores(2, 3, seq, torch.float32, seed=seq)
    ks = [1, seq // 3, seq]
    assert torch.equal(topk_select_reference(scores, ks, ties), bruteforce(scores, ks, ties))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_reference_other_dtypes_rank_by_value(dtype):
    scores = torch.randn(1, 2, 61, generator=torch.Generator().manual_seed(1)).to(dtype)
    ks = [17, 5]
    assert torch.equal(topk_select_reference(scores, ks), bruteforce(scores, ks, "lower"))


def test_distinct_scores_are_the_plain_top_k():
    scores = torch.randn(2, 2, 1110, generator=torch.Generator().manual_seed(2))
    out = topk_select(scores, 100)
    expected = torch.topk(scores, 100, dim=-1).indices.sort(-1).values
    assert torch.equal(out, expected)
    assert torch.equal(topk_select(scores, 100, "higher"), expected)  # no ties: the rule does not matter


@pytest.mark.parametrize("seq", [27, 333])
def test_agrees_with_the_policies_lexicographic_top_k(seq):
    scores = tied_scores(2, 3, seq, torch.float32, seed=seq + 1)
    ks = [3, 10, seq]
    assert torch.equal(topk_select(scores, ks), top_k_lex(ks, tuple(scores.shape), scores))
    positions = torch.arange(seq).view(1, 1, -1)
    assert torch.equal(topk_select(scores, ks, "higher"), top_k_lex(ks, tuple(scores.shape), scores, positions))


def test_zero_and_full_budgets_and_padding():
    scores = torch.randn(1, 3, 27, generator=torch.Generator().manual_seed(3))
    out = topk_select(scores, [0, 5, 27])
    assert out.shape == (1, 3, 27) and out.dtype == torch.long
    assert (out[0, 0] == PAD).all()
    assert (out[0, 1, 5:] == PAD).all() and (out[0, 1, :5] >= 0).all()
    assert torch.equal(out[0, 2], torch.arange(27))
    assert topk_select(scores, 0).shape == (1, 3, 0)


@pytest.mark.parametrize("call,message", [
    (lambda s: topk_select(s[0], 2), r"scores must be a non-empty \[B, H_kv, S\] tensor"),
    (lambda s: topk_select(s.long(), 2), "scores must have a floating dtype"),
    (lambda s: topk_select(s, 11), r"k must lie in \[0, S=10\]"),
    (lambda s: topk_select(s, -1), r"k must lie in \[0, S=10\]"),
    (lambda s: topk_select(s, [1, 2]), r"one count per KV head \(H_kv=3\), got 2"),
    (lambda s: topk_select(s, 2.5), "k must be an int or a sequence"),
    (lambda s: topk_select(s, True), "k must be an int or a sequence"),
    (lambda s: topk_select(s, 2, "first"), r"ties must be one of \['lower', 'higher'\]"),
    (lambda s: topk_select(torch.where(s > 0, float("nan"), s), 2), "must not contain NaN"),
])
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call(torch.randn(2, 3, 10))


def test_nan_check_can_be_skipped():
    scores = torch.randn(1, 1, 10)
    scores[0, 0, 3] = float("nan")
    assert topk_select(scores, 2, check_values=False).shape == (1, 1, 2)


def test_registered_with_source_and_instantiations():
    op = get_op(OP)
    assert op.source == OP and op.instantiations == tuple(kernel_name(d) for d in KERNEL_DTYPES)


@pytest.fixture
def pretend_gpu(monkeypatch):
    monkeypatch.setattr(dispatch_module, "_on_cuda", lambda args, kwargs: True)
    monkeypatch.setattr(dispatch_module, "cupy_unavailable_reason", lambda: None)


def test_cpu_tensors_use_the_reference_without_warning():
    import warnings
    scores = torch.randn(1, 2, 30)
    assert decide(OP, scores, 3).backend == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        topk_select(scores, 3)


@pytest.mark.parametrize("backend", ["auto", "cupy"])
def test_a_dtype_the_kernel_lacks_falls_back_with_a_warning(pretend_gpu, backend):
    scores = torch.randn(1, 2, 30, dtype=torch.float64)
    with pytest.warns(KernelFallbackWarning, match="dtype torch.float64"):
        out = topk_select(scores, 4, backend=backend)  # runs the reference: correct, not a crash
    assert torch.equal(out, bruteforce(scores, [4, 4], "lower"))
    for dtype in KERNEL_DTYPES:
        assert decide(OP, scores.to(dtype), 4).backend == "cupy"
