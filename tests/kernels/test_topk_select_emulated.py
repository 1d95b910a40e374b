"""kernels_cu/topk_select.cu run on the CPU (g++ + cuda_host_emulation.h) through the launcher's own `_launch`,
against the PyTorch reference: exact equality (the tie rule makes the selected set unique)."""
from __future__ import annotations

import shutil

import pytest
import torch
from selection_emulation import ATOMICS_32, build_library, patch_cupy
from test_topk_select import tied_scores

from workbench.kernels.cupy_module import source_path
from workbench.kernels.topk_select import (
    KERNEL_DTYPES,
    _launch,
    kernel_name,
    topk_select_reference,
)

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is needed to emulate the CUDA kernel on the CPU")

PARAMS = ["const T*", "int", "const int*", "int", "int", "int", "long long*"]
DTYPES = list(KERNEL_DTYPES)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    kernels = {kernel_name(dtype): PARAMS for dtype in DTYPES}
    return build_library(tmp_path_factory.mktemp("topk"), source_path("topk_select"), kernels, ATOMICS_32)


@pytest.fixture
def launched(library, monkeypatch):
    names: list[str] = []
    patch_cupy(monkeypatch, library, "topk_select", names)
    return names


def _check(scores, ks, ties, launched):
    launched.clear()
    out = _launch(scores, ks, ties)
    assert launched == [kernel_name(scores.dtype)]
    expected = topk_select_reference(scores, ks, ties)
    assert out.dtype == torch.int64 and torch.equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seq", [27, 61, 1110, 3330])
def test_random_scores_match_the_reference(launched, seq, dtype):
    scores = torch.randn(2, 3, seq, generator=torch.Generator().manual_seed(seq)).to(dtype)
    _check(scores, [1, seq // 16 + 1, seq // 2], "lower", launched)


@pytest.mark.parametrize("ties", ["lower", "higher"])
@pytest.mark.parametrize("seq", [27, 61, 1110, 3330])
def test_heavy_ties_zeros_and_infinities(launched, seq, ties):
    scores = tied_scores(1, 3, seq, torch.float32, seed=seq)
    _check(scores, [seq // 7 + 1, seq // 2, seq], ties, launched)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_ties(launched, dtype):
    scores = torch.randn(1, 2, 1110, generator=torch.Generator().manual_seed(5)).to(dtype)
    scores[..., ::3] = scores[..., ::3].round()  # many exact ties
    assert scores.unique().numel() < scores.numel() * 2 // 3
    _check(scores, [100, 555], "higher", launched)


def test_one_shared_k_zero_budgets_and_a_non_contiguous_row(launched):
    big = torch.randn(2, 2, 80, generator=torch.Generator().manual_seed(7))
    scores = big[:, :, 5:66]  # a strided view: the launcher makes it contiguous
    _check(scores, 9, "lower", launched)
    out = _launch(scores, [0, 4], "lower")
    assert torch.equal(out, topk_select_reference(scores, [0, 4]))
    launched.clear()
    assert _launch(scores, 0, "lower").shape == (2, 2, 0) and launched == []  # nothing to launch
