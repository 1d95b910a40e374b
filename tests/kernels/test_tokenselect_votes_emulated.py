"""kernels_cu/tokenselect_votes.cu run on the CPU (g++ + cuda_host_emulation.h) through the launcher's own
`_launch`, against the PyTorch reference. Tolerance rtol 1e-5, atol 1e-6: both sides are fp32, the kernel sums
in another order and takes exp2 of log2-scaled logits."""
from __future__ import annotations

import shutil

import pytest
import torch
from selection_emulation import build_library, patch_cupy
from test_tokenselect_votes import make_inputs

from workbench.kernels.cupy_module import source_path
from workbench.kernels.tokenselect_votes import (
    KERNEL_DTYPES,
    VOTE_NAME,
    _launch,
    _reference,
    logits_name,
    plan_splits,
)

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is needed to emulate the CUDA kernel on the CPU")

LOGITS_PARAMS = ["const T*", "const T*", "long long", "long long", "long long", "int", "int", "int", "int", "float",
                 "float*", "float*", "float*"]
VOTE_PARAMS = ["const float*", "const float*", "const float*", "int", "int", "int", "int", "int", "float*"]
DTYPES = list(KERNEL_DTYPES)
HEAD_DIMS = (64, 128)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    kernels = {logits_name(dtype, d): LOGITS_PARAMS for dtype in DTYPES for d in HEAD_DIMS}
    kernels[VOTE_NAME] = VOTE_PARAMS
    return build_library(tmp_path_factory.mktemp("tokenselect"), source_path("tokenselect_votes"), kernels)


@pytest.fixture
def launched(library, monkeypatch):
    names: list[str] = []
    patch_cupy(monkeypatch, library, "tokenselect_votes", names)
    return names


def _check(q, k, launched, scale=None, num_splits=None):
    launched.clear()
    votes = _launch(q, k, scale, num_splits)
    assert launched == [logits_name(q.dtype, q.shape[2]), VOTE_NAME]
    assert votes.dtype == torch.float32
    torch.testing.assert_close(votes, _reference(q, k, scale), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seq", [27, 61])
def test_matches_the_reference(launched, seq, dtype):
    q, k = make_inputs(batch=2, heads=6, kv_heads=2, seq=seq, head_dim=64, dtype=dtype, seed=seq)
    _check(q, k, launched)


# The emulated warp shuffles cost two thread barriers each, so the long rows use few query heads.
@pytest.mark.parametrize("seq,heads,num_splits", [(1110, 2, None),
                                                  pytest.param(3330, 1, 7, marks=pytest.mark.slow)])
def test_long_rows(launched, seq, heads, num_splits):
    q, k = make_inputs(batch=1, heads=heads, kv_heads=1, seq=seq, head_dim=64, dtype=torch.bfloat16, seed=seq)
    _check(q, k, launched, num_splits=num_splits)


@pytest.mark.parametrize("num_splits", [1, 2, 7, 61])
def test_forced_splits(launched, num_splits):
    q, k = make_inputs(batch=1, heads=3, kv_heads=1, seq=61, head_dim=64, seed=num_splits)
    _check(q, k, launched, num_splits=num_splits)


def test_smollm_shape_head_dim_128_scale_and_strided_cache(launched):
    q, k = make_inputs(batch=2, heads=9, kv_heads=3, seq=61, head_dim=128, seed=4)
    big = torch.randn(2, 3, 80, 128)
    big[:, :, :61] = k
    _check(q, big[:, :, :61], launched, scale=0.3, num_splits=3)


def test_large_logits_do_not_overflow(launched):
    q, k = make_inputs(batch=1, heads=2, kv_heads=1, seq=61, head_dim=64, seed=5)
    q *= 40.0  # logits in the hundreds: exp would overflow without the running max
    launched.clear()
    votes = _launch(q, k, None, 4)
    assert torch.isfinite(votes).all()
    torch.testing.assert_close(votes, _reference(q, k), rtol=1e-4, atol=1e-6)


def test_split_plan():
    assert plan_splits(1, 3, 32768, num_sms=132) == (176, 187)  # 4 blocks per SM over 3 KV heads
    assert plan_splits(1, 1, 27) == (1, 27)
    with pytest.raises(ValueError, match=r"num_splits must lie in \[1, S=27\]"):
        plan_splits(1, 1, 27, num_splits=28)
