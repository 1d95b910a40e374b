"""Batched rejection sampling: the reference's output law is exactly p (exact integration over the draft law
and the uniforms, float64, 1e-9), and the CUDA kernel run on the CPU (g++ + cuda_host_emulation.h) returns the
reference's decisions for the same uniforms, over odd vocabularies (27, 61, 1110) and fp32/fp64 storage."""
from __future__ import annotations

import contextlib
import ctypes
import importlib
import shutil
import warnings
from itertools import pairwise

import numpy as np
import pytest
import torch
from kernel_emulation import build, c_arg

from workbench.kernels import (
    BackendUnavailableError,
    KernelFallbackWarning,
    cupy_module,
    decide,
    get_op,
    rejection_sampling,
    rejection_sampling_cupy,
    rejection_sampling_reference,
)
from workbench.kernels.cupy_module import source_path
from workbench.kernels.rejection_sampling import (
    KERNEL_DTYPES,
    THREADS,
    _launch,
    kernel_name,
    launch_args,
    prepare,
    validate,
)

OP = "rejection_sampling"
TOL = 1e-9
dispatch_module = importlib.import_module("workbench.kernels.dispatch")
needs_gpp = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is needed to emulate the CUDA kernel")


# ---- exact law of the reference ---------------------------------------------------------------------------------

def _cdf_breaks(weights: np.ndarray) -> list[float]:
    c = np.cumsum(weights)
    return (c / c[-1]).tolist() if c[-1] > 0 else []


def _intervals(breaks) -> list[tuple[float, float]]:
    """(midpoint, length) of the pieces of [0, 1) cut at `breaks`."""
    points = sorted({0.0, 1.0, *(b for b in breaks if 0 < b < 1)})
    return [((a + b) / 2, b - a) for a, b in pairwise(points) if b > a]


def emitted_law(rule, p: np.ndarray, q: np.ndarray, drafted: bool = True) -> tuple[np.ndarray, float]:
    """Exact law of the token `rule` emits for x ~ q (or no draft) and independent uniforms, by integration.

    The rule's decision is constant between the breakpoints of min(1, p(x)/q(x)) (u_accept) and of the CDFs of
    p and of max(p - q, 0) (u_sample), so evaluating it at every piece's midpoint, weighted by the piece's
    length, integrates exactly. All pieces go through `rule` in one batch. Returns (law, P(accepted)).
    """
    vocab = len(p)
    s_pieces = _intervals(_cdf_breaks(p) + _cdf_breaks(np.clip(p - q, 0, None)))
    rows = []  # (draft token, u_accept, u_sample, weight)
    for x in (range(vocab) if drafted else [-1]):
        if x >= 0 and q[x] == 0:
            continue
        a_pieces = _intervals([p[x] / q[x]]) if x >= 0 else [(0.5, 1.0)]
        for ua, la in a_pieces:
            for us, ls in s_pieces:
                rows.append((x, ua, us, (q[x] if x >= 0 else 1.0) * la * ls))
    draft = torch.tensor([r[0] for r in rows])
    ua, us, weight = (torch.tensor([r[i] for r in rows], dtype=torch.float64) for i in (1, 2, 3))
    n = len(rows)
    accepted, token = rule(torch.tensor(p).expand(n, -1), torch.tensor(q).expand(n, -1), draft, ua, us)
    law = np.zeros(vocab)
    np.add.at(law, token.numpy(), weight.numpy())
    return law, float(weight[accepted].sum())


def toy_pairs(vocab: int, seed: int):
    """(p, q) pairs: random, a narrow draft (zeros in q), a target with zeros, q == p, disjoint supports."""
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(vocab)), rng.dirichlet(np.ones(vocab) * 0.5)
    narrow = q.copy()
    narrow[: vocab // 2] = 0
    narrow /= narrow.sum()
    sparse_p = p.copy()
    sparse_p[1::2] = 0
    sparse_p /= sparse_p.sum()
    disjoint_q = np.zeros(vocab)
    disjoint_q[1::2] = rng.dirichlet(np.ones(len(disjoint_q[1::2])))
    return {"random": (p, q), "narrow-draft": (p, narrow), "target-zeros": (sparse_p, q), "equal": (p, p.copy()),
            "disjoint": (sparse_p, disjoint_q)}


def _reference_rule(p, q, draft, ua, us):
    return rejection_sampling_reference(p, q, draft, ua, us)


@pytest.mark.parametrize("pair", ["random", "narrow-draft", "target-zeros", "equal", "disjoint"])
@pytest.mark.parametrize("vocab,seed", [(5, 0), (8, 1), (13, 2)])
def test_reference_output_law_is_exactly_p(vocab, seed, pair):
    p, q = toy_pairs(vocab, seed)[pair]
    law, accept = emitted_law(_reference_rule, p, q)
    assert law.sum() == pytest.approx(1.0, abs=TOL)
    assert np.abs(law - p).max() < TOL
    assert accept == pytest.approx(np.minimum(p, q).sum(), abs=TOL)  # P(accept) = sum_x min(p, q)


@pytest.mark.parametrize("vocab,seed", [(5, 0), (13, 2)])
def test_bonus_rows_without_a_draft_sample_p_exactly(vocab, seed):
    p, q = toy_pairs(vocab, seed)["target-zeros"]
    law, accept = emitted_law(_reference_rule, p, q, drafted=False)
    assert np.abs(law - p).max() < TOL and accept == 0


def test_the_exactness_check_has_teeth():
    """Resampling from p instead of the residual (a classic mistake) is caught by the same integration."""
    def from_p_after_rejection(p, q, draft, ua, us):
        accepted, _ = rejection_sampling_reference(p, q, draft, ua, us)
        _, bonus = rejection_sampling_reference(p, q, torch.full_like(draft, -1), ua, us)
        return accepted, torch.where(accepted, draft, bonus)

    p, q = toy_pairs(8, 1)["random"]
    law, _ = emitted_law(from_p_after_rejection, p, q)
    assert law.sum() == pytest.approx(1.0, abs=TOL) and np.abs(law - p).max() > 1e-3


def test_decisions_on_hand_made_rows():
    p = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5], [0.1, 0.0, 0.9]], dtype=torch.float64)
    q = torch.tensor([[0.25, 0.75, 0.0], [0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.5, 0.5, 0.0]], dtype=torch.float64)
    draft = torch.tensor([1, 2, 0, -1])
    ua = torch.tensor([0.5, 0.99, 0.4, 0.0], dtype=torch.float64)
    us = torch.tensor([0.0, 0.3, 0.99, 0.1], dtype=torch.float64)
    accepted, token = rejection_sampling(p, q, draft, ua, us)
    # row 0: 0.5 * 0.75 < 0.5 -> keep 1; row 1: q == p always keeps; row 2: 0.4 * 0.6 >= 0.2 -> residual
    # (0, 0.1, 0.3) / 0.4 at 0.99 -> token 2; row 3: no draft, p at 0.1 -> first C_j > 0.1 with w_j > 0 -> 2
    assert accepted.tolist() == [True, True, False, False]
    assert token.tolist() == [1, 2, 2, 2]
    accepted, token = rejection_sampling(p[:1], q[:1], torch.tensor([1]), torch.tensor([0.9]), torch.tensor([0.5]))
    # 0.9 * 0.75 >= 0.5: rejected; residual (0.25, 0, 0) -> token 0
    assert accepted.tolist() == [False] and token.tolist() == [0]


# ---- the CUDA kernel, emulated -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    lines = ['#include "cuda_host_emulation.h"', f'#include "{source_path(OP)}"']
    for dtype, ctype in KERNEL_DTYPES.items():
        lines.append(
            f'extern "C" void run_{ctype}(const void* p, const void* q, long long ps, long long qs, const void* draft, '
            "const void* ua, const void* us, int V, void* accepted, void* token, unsigned rows) {\n"
            f"    wb_launch(dim3{{rows, 1, 1}}, dim3{{{THREADS}, 1, 1}}, [&] {{ {kernel_name(dtype)}("
            f"(const {ctype}*)p, (const {ctype}*)q, ps, qs, (const long long*)draft, (const double*)ua, "
            "(const double*)us, V, (unsigned char*)accepted, (long long*)token); });\n}")
    return build(tmp_path_factory.mktemp("rejection_emulation"), "rejection_sampling", "\n".join(lines) + "\n")


def emulate(lib, p, q, draft, ua, us):
    validate(p, q, draft, ua, us)
    p, q, draft, ua, us, accepted, token = prepare(p, q, draft, ua, us)
    getattr(lib, f"run_{KERNEL_DTYPES[p.dtype]}")(*map(c_arg, launch_args(p, q, draft, ua, us, accepted, token)),
                                                  ctypes.c_uint(p.shape[0]))
    return accepted, token


def random_rows(rows: int, vocab: int, dtype: torch.dtype, seed: int):
    """Random p, q (peaked, with zeros), drafts drawn from q (some rows undrafted), and the special rows."""
    gen = torch.Generator().manual_seed(seed)
    p = torch.softmax(3 * torch.randn(rows, vocab, generator=gen, dtype=torch.float64), -1)
    q = torch.softmax(3 * torch.randn(rows, vocab, generator=gen, dtype=torch.float64), -1)
    p[:, ::7] = 0
    q[1] = p[1]  # q == p: the residual is zero everywhere
    p, q = p / p.sum(-1, keepdim=True), q / q.sum(-1, keepdim=True)
    p, q = p.to(dtype), q.to(dtype)
    draft = torch.multinomial(q.double(), 1, generator=gen)[:, 0]
    draft[::5] = -1
    draft[2] = 0  # a token with p = 0
    ua = torch.rand(rows, generator=gen, dtype=torch.float64)
    us = torch.rand(rows, generator=gen, dtype=torch.float64)
    ua[1], ua[3], us[4] = 0.9999999, 0.0, 0.0
    return p, q, draft, ua, us


@needs_gpp
@pytest.mark.parametrize("dtype", list(KERNEL_DTYPES), ids=str)
@pytest.mark.parametrize("vocab,rows", [(27, 61), (61, 27), (1110, 13), (5, 9)])
def test_emulated_kernel_equals_the_reference(emulator, vocab, rows, dtype):
    args = random_rows(rows, vocab, dtype, seed=vocab)
    accepted, token = emulate(emulator, *args)
    expected = rejection_sampling_reference(*args)
    assert torch.equal(accepted, expected.accepted) and torch.equal(token, expected.token)
    assert 0 < int(accepted.sum()) < rows  # both branches taken


@needs_gpp
def test_emulated_kernel_strided_rows_and_int32_drafts(emulator):
    p, q, draft, ua, us = random_rows(11, 300, torch.float32, seed=5)
    wide_p, wide_q = torch.zeros(11, 512), torch.zeros(11, 512)
    wide_p[:, :300], wide_q[:, :300] = p, q
    p, q = wide_p[:, :300], wide_q[:, :300]
    accepted, token = emulate(emulator, p, q, draft.int(), ua.float(), us.float())
    expected = rejection_sampling_reference(p, q, draft, ua.float(), us.float())
    assert torch.equal(accepted, expected.accepted) and torch.equal(token, expected.token)


@needs_gpp
def test_the_cupy_launcher_glue_drives_the_emulated_kernel(emulator, monkeypatch):
    launched = []

    def get_kernel(op, dtype, names, name, device):
        assert op == OP and names == [name] == [kernel_name(dtype)]

        def kernel(grid, block, args):
            assert block == (THREADS, 1, 1) and grid[1:] == (1, 1)
            launched.append(name)
            getattr(emulator, f"run_{KERNEL_DTYPES[dtype]}")(*map(c_arg, args), grid[0])
        return kernel

    monkeypatch.setattr(cupy_module, "get_kernel", get_kernel)
    monkeypatch.setattr(cupy_module, "to_cupy", lambda t: t)
    monkeypatch.setattr(cupy_module, "torch_stream", lambda device: contextlib.nullcontext())
    for dtype in KERNEL_DTYPES:
        args = random_rows(17, 61, dtype, seed=1)
        got = _launch(*args)
        expected = rejection_sampling_reference(*args)
        assert torch.equal(got.accepted, expected.accepted) and torch.equal(got.token, expected.token)
    assert launched == [kernel_name(d) for d in KERNEL_DTYPES]


# ---- arguments and backend choice --------------------------------------------------------------------------------

def test_bad_arguments_name_the_parameter():
    p, q, draft, ua, us = random_rows(6, 10, torch.float64, seed=0)
    with pytest.raises(ValueError, match=r"p must be \[B, V\]"):
        rejection_sampling(p[0], q, draft, ua, us)
    with pytest.raises(ValueError, match="q must have the shape of p"):
        rejection_sampling(p, q[:, :5], draft, ua, us)
    with pytest.raises(ValueError, match=r"draft tokens must lie in \[-1, V=10\)"):
        rejection_sampling(p, q, draft + 10, ua, us)
    with pytest.raises(ValueError, match=r"u_sample must lie in \[0, 1\)"):
        rejection_sampling(p, q, draft, ua, us + 1)
    with pytest.raises(ValueError, match=r"draft must be an int32/int64 tensor \[B=6\]"):
        rejection_sampling(p, q, draft.float(), ua, us)
    with pytest.raises(ValueError, match="q must hold probabilities"):
        rejection_sampling(p, -q, draft, ua, us)
    with pytest.raises(ValueError, match="p has a row with no mass"):
        rejection_sampling(torch.zeros_like(p), q, draft, ua, us)


def test_registered_and_backend_choice_on_cpu():
    op = get_op(OP)
    assert op.source == OP and op.instantiations == ("rejection_sample<float>", "rejection_sample<double>")
    args = random_rows(6, 10, torch.float64, seed=0)
    assert decide(OP, *args).backend == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rejection_sampling(*args)
    with pytest.raises(BackendUnavailableError, match="backend='cupy' cannot run 'rejection_sampling'"):
        rejection_sampling(*args, backend="cupy")
    with pytest.raises(BackendUnavailableError, match="rejection_sampling_cupy cannot run"):
        rejection_sampling_cupy(*args)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["auto", "cupy"])
def test_half_precision_probabilities_fall_back_with_a_warning(monkeypatch, dtype, backend):
    monkeypatch.setattr(dispatch_module, "_on_cuda", lambda args, kwargs: True)
    monkeypatch.setattr(dispatch_module, "cupy_unavailable_reason", lambda: None)
    args = random_rows(6, 10, dtype, seed=0)
    with pytest.warns(KernelFallbackWarning, match=f"dtype {dtype}; the kernel has"):
        got = rejection_sampling(*args, backend=backend)
    expected = rejection_sampling_reference(*args)
    assert torch.equal(got.token, expected.token)
    assert decide(OP, *random_rows(6, 10, torch.float32, seed=0), backend=backend).backend == "cupy"
