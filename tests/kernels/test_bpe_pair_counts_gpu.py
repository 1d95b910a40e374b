"""The CuPy BPE pair-counting kernel on a real GPU, against the CPU counter and the reference.

Needs a CUDA build of torch and CuPy; skipped otherwise (`python -m pytest tests/kernels -m gpu -q`).
Tolerance: none (integer counts; the sorted arrays must be equal).
"""
import pytest
import torch
from test_bpe_pair_counts import corpus_table, random_table

from workbench.kernels import (
    KernelFallbackWarning,
    bpe_pair_counts,
    bpe_pair_counts_reference,
    cupy_available,
    cupy_unavailable_reason,
    decide,
)
from workbench.tokenization.pair_counts import count_pairs, flatten_word_table

_GPU = torch.cuda.is_available() and cupy_available()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _GPU, reason="needs a CUDA device, a CUDA build of torch and CuPy: "
                       + ("torch sees no CUDA device" if not torch.cuda.is_available() else str(cupy_unavailable_reason()))),
]
OP = "bpe_pair_counts"


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64], ids=str)
@pytest.mark.parametrize("words,vocab", [(27, 5), (61, 40), (1110, 300), (200_000, 5000)])
def test_kernel_equals_the_reference_and_the_cpu_counter(words, vocab, dtype):
    seqs, freqs = random_table(words, vocab, seed=words)
    ids, offsets, counts = flatten_word_table(seqs, freqs)
    got = bpe_pair_counts(ids.to(dtype).cuda(), offsets.cuda(), counts.cuda(), backend="cupy")
    expected = bpe_pair_counts_reference(ids, offsets, counts)
    assert all(torch.equal(a.cpu(), b) for a, b in zip(got, expected))
    if words <= 1110:
        assert got.to_dict() == count_pairs(seqs, freqs)


def test_corpus_through_count_pairs_on_cuda():
    seqs, freqs = corpus_table()
    assert decide(OP, *flatten_word_table(seqs, freqs, "cuda")).backend == "cupy"
    assert count_pairs(seqs, freqs, device="cuda") == count_pairs(seqs, freqs)


def test_int16_ids_fall_back_with_a_warning():
    seqs, freqs = random_table(61, 40, seed=1)
    ids, offsets, counts = flatten_word_table(seqs, freqs, "cuda")
    with pytest.warns(KernelFallbackWarning):
        got = bpe_pair_counts(ids.to(torch.int16), offsets, counts, backend="cupy")
    assert got.to_dict() == count_pairs(seqs, freqs)
