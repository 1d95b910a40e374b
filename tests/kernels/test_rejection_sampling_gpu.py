"""The CuPy rejection-sampling kernel on a real GPU, against the PyTorch reference (run on the CPU).

Needs a CUDA build of torch and CuPy; skipped otherwise (`python -m pytest tests/kernels -m gpu -q`).
Tolerance: none. Both sides decide in float64 from the same stored probabilities and uniforms, so accepted flags
and tokens must be equal; they could differ only if u_sample * C_{V-1} fell within float64 rounding of a
cumulative sum (the kernel groups its sums by thread chunks), which these seeded cases do not hit.
"""
import pytest
import torch
from test_rejection_sampling import random_rows

from workbench.kernels import (
    KernelFallbackWarning,
    cupy_available,
    cupy_unavailable_reason,
    decide,
    rejection_sampling,
    rejection_sampling_reference,
)

_GPU = torch.cuda.is_available() and cupy_available()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _GPU, reason="needs a CUDA device, a CUDA build of torch and CuPy: "
                       + ("torch sees no CUDA device" if not torch.cuda.is_available() else str(cupy_unavailable_reason()))),
]
OP = "rejection_sampling"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("vocab,rows", [(27, 61), (61, 27), (1110, 13), (151936, 7), (32000, 512)])
def test_kernel_equals_the_reference(vocab, rows, dtype):
    args = random_rows(rows, vocab, dtype, seed=vocab + rows)
    got = rejection_sampling(*(a.cuda() for a in args), backend="cupy")
    expected = rejection_sampling_reference(*args)
    assert got.token.is_cuda and got.accepted.dtype == torch.bool
    assert torch.equal(got.accepted.cpu(), expected.accepted) and torch.equal(got.token.cpu(), expected.token)


def test_auto_uses_the_kernel_and_half_precision_falls_back():
    args = [a.cuda() for a in random_rows(9, 100, torch.float32, seed=2)]
    assert decide(OP, *args).backend == "cupy"
    half = [a.cuda() for a in random_rows(9, 100, torch.float16, seed=2)]
    with pytest.warns(KernelFallbackWarning):
        got = rejection_sampling(*half, backend="cupy")
    assert torch.equal(got.token.cpu(), rejection_sampling_reference(*(a.cpu() for a in half)).token)


def test_empirical_law_matches_p_on_the_gpu():
    """Many rows with one (p, q) pair and fresh uniforms: the token frequencies estimate p (5 sigma)."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    p = torch.tensor([0.1, 0.4, 0.0, 0.3, 0.2], dtype=torch.float64, device="cuda")
    q = torch.tensor([0.5, 0.1, 0.2, 0.1, 0.1], dtype=torch.float64, device="cuda")
    rows = 200_000
    draft = torch.multinomial(q, rows, replacement=True, generator=gen)
    u = torch.rand(2, rows, dtype=torch.float64, device="cuda", generator=gen)
    _, token = rejection_sampling(p.expand(rows, -1), q.expand(rows, -1), draft, u[0], u[1], backend="cupy")
    freq = torch.bincount(token, minlength=5).double() / rows
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / rows).sqrt() + 1e-12).all()
