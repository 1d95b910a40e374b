"""kernels_cu/quest_pages.cu run on the CPU (g++ + cuda_host_emulation.h) through the launchers' own `_launch`
functions, against the PyTorch references. Bounds: exact (stored values are copied). Scores: fp32 sums in a
different order, so rtol 1e-5 / atol 1e-4 (scores are sums of D products of order 1)."""
from __future__ import annotations

import shutil

import pytest
import torch
from selection_emulation import build_library, patch_cupy
from test_quest_pages import make_inputs

from workbench.kernels.cupy_module import source_path
from workbench.kernels.quest_pages import (
    KERNEL_DTYPES,
    _bounds_launch,
    _bounds_reference,
    _scores_launch,
    _scores_reference,
    bounds_name,
    scores_name,
)

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is needed to emulate the CUDA kernel on the CPU")

BOUNDS_PARAMS = ["const T*", "long long", "long long", "long long", "int", "int", "int", "int", "int", "T*", "T*"]
SCORES_PARAMS = ["const T*", "const T*", "const T*", "int", "int", "int", "int", "int", "float*"]
DTYPES = list(KERNEL_DTYPES)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    kernels = {bounds_name(dtype): BOUNDS_PARAMS for dtype in DTYPES}
    kernels.update({scores_name(dtype): SCORES_PARAMS for dtype in DTYPES})
    return build_library(tmp_path_factory.mktemp("quest"), source_path("quest_pages"), kernels)


@pytest.fixture
def launched(library, monkeypatch):
    names: list[str] = []
    patch_cupy(monkeypatch, library, "quest_pages", names)
    return names


def _check(q, k, page_size, launched):
    launched.clear()
    kmin, kmax = _bounds_launch(k, page_size)
    rmin, rmax = _bounds_reference(k, page_size)
    assert kmin.dtype == k.dtype and torch.equal(kmin, rmin) and torch.equal(kmax, rmax)
    scores = _scores_launch(q, kmin, kmax)
    assert launched == [bounds_name(k.dtype), scores_name(k.dtype)]
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, _scores_reference(q, rmin, rmax), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seq,page_size", [(27, 16), (61, 7), (1110, 16),
                                           pytest.param(3330, 32, marks=pytest.mark.slow)])
def test_matches_the_reference(launched, seq, page_size, dtype):
    q, k = make_inputs(batch=2, heads=9, kv_heads=3, seq=seq, head_dim=64, dtype=dtype, seed=seq)
    _check(q, k, page_size, launched)


@pytest.mark.parametrize("head_dim", [40, 128])
def test_other_head_dims_and_mha(launched, head_dim):
    q, k = make_inputs(batch=1, heads=4, kv_heads=4, seq=61, head_dim=head_dim, seed=head_dim)
    _check(q, k, 5, launched)


def test_strided_cache_and_page_size_one(launched):
    q, k = make_inputs(batch=2, heads=6, kv_heads=2, seq=27, head_dim=64, seed=8)
    big = torch.randn(2, 2, 40, 64)
    big[:, :, :27] = k
    view = big[:, :, :27]
    assert not view.is_contiguous()
    _check(q, view, 1, launched)


def test_nan_keys_give_nan_bounds_as_in_torch(launched):
    _, k = make_inputs(batch=1, heads=2, kv_heads=1, seq=20, head_dim=64, seed=9)
    k[0, 0, 3, 5] = float("nan")  # first page: NaN in the middle
    k[0, 0, 8, 7] = float("nan")  # second page (page_size 8): NaN as the first row
    kmin, kmax = _bounds_launch(k, 8)
    rmin, rmax = _bounds_reference(k, 8)
    assert torch.equal(kmin.isnan(), rmin.isnan()) and kmin.isnan().sum() == 2
    assert torch.equal(kmin.nan_to_num(), rmin.nan_to_num()) and torch.equal(kmax.nan_to_num(), rmax.nan_to_num())
