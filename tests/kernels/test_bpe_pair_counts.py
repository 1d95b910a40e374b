"""BPE pair counting: the CUDA hash-table kernel run on the CPU (g++ + cuda_host_emulation.h, real atomics) and the
PyTorch reference both equal the trainer's plain Python counter (tokenization.pair_counts.count_pairs), on random
word tables of odd sizes and on a real corpus sample (Python standard-library source, pre-tokenized as the BPE
trainer does)."""
from __future__ import annotations

import contextlib
import ctypes
import importlib
import inspect
import json
import shutil
import textwrap
import warnings

import pytest
import torch
from kernel_emulation import ATOMICS_64, build, c_arg

from workbench.kernels import (
    BackendUnavailableError,
    KernelFallbackWarning,
    bpe_pair_counts,
    bpe_pair_counts_cupy,
    bpe_pair_counts_reference,
    cupy_module,
    decide,
    get_op,
)
from workbench.kernels.bpe_pair_counts import (
    KERNEL_DTYPES,
    THREADS,
    _launch,
    finish,
    kernel_name,
    launch_args,
    prepare,
    table_capacity,
    validate,
)
from workbench.tokenization.bpe_train import count_words, train_from_word_counts
from workbench.tokenization.pair_counts import count_pairs, flatten_word_table
from workbench.tokenization.pretokenize import Pretokenizer

OP = "bpe_pair_counts"
dispatch_module = importlib.import_module("workbench.kernels.dispatch")
needs_gpp = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is needed to emulate the CUDA kernel")


def random_table(words: int, vocab: int, seed: int, max_len: int = 9):
    """Random words (lengths 0..max_len, small vocabulary so pairs repeat) with counts 0..20."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, max_len + 1, (words,), generator=gen).tolist()
    seqs = [torch.randint(0, vocab, (n,), generator=gen).tolist() for n in lengths]
    freqs = torch.randint(0, 21, (words,), generator=gen).tolist()
    return seqs, freqs


def corpus_table():
    """The word table the BPE trainer builds from a real text: a few standard-library modules' source."""
    text = "\n".join(inspect.getsource(m) for m in (json, textwrap, contextlib))
    words = count_words([text], Pretokenizer())
    return [list(w) for w in words], list(words.values())


# ---- the CPU counter and the reference ---------------------------------------------------------------------------

def test_count_pairs_is_the_trainers_initial_count():
    seqs, freqs = corpus_table()
    words = {bytes(s): f for s, f in zip(seqs, freqs)}
    _, _, _, log = train_from_word_counts(words, 257, min_frequency=1, record_pair_counts=True,
                                                     progress=False)
    assert count_pairs(seqs, freqs) == log.counts_at(0)
    assert count_pairs([[1, 2, 1, 2], [2, 1], [7], []], [3, 5, 2, 9]) == {(1, 2): 6, (2, 1): 8}
    assert count_pairs([[1, 1, 1]], [0]) == {}


@pytest.mark.parametrize("words,vocab", [(27, 5), (61, 40), (1110, 300)])
def test_reference_equals_the_cpu_counter(words, vocab):
    seqs, freqs = random_table(words, vocab, seed=words)
    result = bpe_pair_counts(*flatten_word_table(seqs, freqs))
    assert result.to_dict() == count_pairs(seqs, freqs)
    keys = result.left * 2**32 + result.right
    assert bool((keys[1:] > keys[:-1]).all()) and bool((result.count > 0).all())  # sorted, positive


def test_reference_on_the_corpus_and_int32_ids():
    seqs, freqs = corpus_table()
    ids, offsets, counts = flatten_word_table(seqs, freqs)
    assert bpe_pair_counts(ids.int(), offsets, counts.int()).to_dict() == count_pairs(seqs, freqs)


def test_count_pairs_on_a_cuda_device_goes_through_the_op(monkeypatch):
    """device='cuda' flattens the table and calls the op (here with the tensors kept on the CPU)."""
    import workbench.tokenization.pair_counts as module

    seqs, freqs = random_table(61, 7, seed=3)
    calls = []
    real = module.flatten_word_table
    monkeypatch.setattr(module, "flatten_word_table", lambda s, f, device: calls.append(device) or real(s, f, "cpu"))
    assert count_pairs(seqs, freqs, device="cuda") == count_pairs(seqs, freqs)
    assert calls == ["cuda"]


# ---- the CUDA kernel, emulated -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    lines = ['#include "cuda_host_emulation.h"', ATOMICS_64, f'#include "{cupy_module.source_path(OP)}"']
    for dtype, ctype in KERNEL_DTYPES.items():
        symbol = ctype.replace(" ", "_")
        lines.append(
            f'extern "C" void run_{symbol}(const void* ids, const void* offsets, const void* counts, long long W, '
            "void* keys, void* values, unsigned long long mask, unsigned blocks) {\n"
            f"    wb_launch(dim3{{blocks, 1, 1}}, dim3{{{THREADS}, 1, 1}}, [&] {{ {kernel_name(dtype)}("
            f"(const {ctype}*)ids, (const long long*)offsets, (const long long*)counts, W, "
            "(unsigned long long*)keys, (unsigned long long*)values, mask); });\n}")
    return build(tmp_path_factory.mktemp("bpe_emulation"), "bpe_pair_counts", "\n".join(lines) + "\n")


def _run(lib, dtype, args, blocks):
    getattr(lib, f"run_{KERNEL_DTYPES[dtype].replace(' ', '_')}")(*map(c_arg, args), ctypes.c_uint(blocks))


def emulate(lib, ids, offsets, counts, blocks=None):
    """What `_launch` does, with the kernel run by the emulator; also returns the raw table."""
    validate(ids, offsets, counts)
    ids, offsets, counts, keys, values, grid = prepare(ids, offsets, counts)
    _run(lib, ids.dtype, launch_args(ids, offsets, counts, keys, values), blocks or grid[0])
    return finish(keys, values), keys


def _home_slot(key: int, capacity: int) -> int:
    """The kernel's hash (splitmix64 finaliser) in Python."""
    m = 2**64 - 1
    x = key
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & m
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & m
    x ^= x >> 31
    return x & (capacity - 1)


@needs_gpp
@pytest.mark.parametrize("dtype", list(KERNEL_DTYPES), ids=str)
@pytest.mark.parametrize("words,vocab", [(27, 5), (61, 40), (1110, 300)])
def test_emulated_kernel_equals_the_cpu_counter(emulator, words, vocab, dtype):
    seqs, freqs = random_table(words, vocab, seed=words + 1)
    ids, offsets, counts = flatten_word_table(seqs, freqs)
    result, _ = emulate(emulator, ids.to(dtype), offsets, counts)
    assert result.to_dict() == count_pairs(seqs, freqs)
    assert all(torch.equal(a, b) for a, b in zip(result, bpe_pair_counts_reference(ids, offsets, counts)))


@needs_gpp
def test_emulated_kernel_on_the_corpus_with_collisions_and_a_grid_stride(emulator):
    seqs, freqs = corpus_table()
    ids, offsets, counts = flatten_word_table(seqs, freqs)
    result, keys = emulate(emulator, ids, offsets, counts, blocks=2)  # 2 blocks: each thread loops over words
    assert len(seqs) > 2 * THREADS
    assert result.to_dict() == count_pairs(seqs, freqs)
    capacity = table_capacity(ids.shape[0])
    assert keys.shape[0] == capacity
    slots = (keys != -1).nonzero().flatten().tolist()
    moved = sum(_home_slot(int(keys[s]), capacity) != s for s in slots)
    assert moved > 0  # linear probing really ran


@needs_gpp
def test_the_cupy_launcher_glue_drives_the_emulated_kernel(emulator, monkeypatch):
    launched = []

    def get_kernel(op, dtype, names, name, device):
        assert op == OP and names == [name] == [kernel_name(dtype)]

        def kernel(grid, block, args):
            assert block == (THREADS, 1, 1)
            launched.append(name)
            _run(emulator, dtype, args, grid[0])
        return kernel

    monkeypatch.setattr(cupy_module, "get_kernel", get_kernel)
    monkeypatch.setattr(cupy_module, "to_cupy", lambda t: t)
    monkeypatch.setattr(cupy_module, "torch_stream", lambda device: contextlib.nullcontext())
    seqs, freqs = random_table(600, 30, seed=8)
    for dtype in KERNEL_DTYPES:
        ids, offsets, counts = flatten_word_table(seqs, freqs)
        assert _launch(ids.to(dtype), offsets, counts).to_dict() == count_pairs(seqs, freqs)
    assert launched == [kernel_name(d) for d in KERNEL_DTYPES]


# ---- arguments and backend choice --------------------------------------------------------------------------------

def test_bad_arguments_name_the_parameter():
    ids, offsets, counts = flatten_word_table([[1, 2, 3], [4, 5]], [2, 3])
    with pytest.raises(ValueError, match="offsets must have W \\+ 1 = 3 entries"):
        bpe_pair_counts(ids, offsets[:2], counts)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 2\^31\)"):
        bpe_pair_counts(ids - 2, offsets, counts)
    with pytest.raises(ValueError, match="offsets must rise from 0 to T=5"):
        bpe_pair_counts(ids, torch.tensor([0, 4, 3]), counts)
    with pytest.raises(ValueError, match="counts must be >= 0"):
        bpe_pair_counts(ids, offsets, -counts)
    with pytest.raises(ValueError, match="ids must be a one-dimensional integer tensor"):
        bpe_pair_counts(ids.float(), offsets, counts)
    with pytest.raises(ValueError, match="seqs and freqs must have the same length"):
        flatten_word_table([[1, 2]], [1, 2])


def test_empty_tables():
    assert bpe_pair_counts(*flatten_word_table([], [])).to_dict() == {}
    assert bpe_pair_counts(*flatten_word_table([[3], []], [4, 1])).to_dict() == {}


def test_registered_and_backend_choice_on_cpu():
    op = get_op(OP)
    assert op.source == OP and op.instantiations == ("bpe_pair_count_insert<int>", "bpe_pair_count_insert<long long>")
    args = flatten_word_table([[1, 2, 3]], [2])
    assert decide(OP, *args).backend == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bpe_pair_counts(*args)
    with pytest.raises(BackendUnavailableError, match="backend='cupy' cannot run 'bpe_pair_counts'"):
        bpe_pair_counts(*args, backend="cupy")
    with pytest.raises(BackendUnavailableError, match="bpe_pair_counts_cupy cannot run"):
        bpe_pair_counts_cupy(*args)


@pytest.mark.parametrize("backend", ["auto", "cupy"])
def test_ids_of_a_dtype_the_kernel_lacks_fall_back_with_a_warning(monkeypatch, backend):
    monkeypatch.setattr(dispatch_module, "_on_cuda", lambda args, kwargs: True)
    monkeypatch.setattr(dispatch_module, "cupy_unavailable_reason", lambda: None)
    seqs, freqs = random_table(27, 5, seed=0)
    ids, offsets, counts = flatten_word_table(seqs, freqs)
    with pytest.warns(KernelFallbackWarning, match="ids dtype torch.int16; the kernel has"):
        got = bpe_pair_counts(ids.to(torch.int16), offsets, counts, backend=backend)
    assert got.to_dict() == count_pairs(seqs, freqs)
    assert decide(OP, ids.int(), offsets, counts, backend=backend).backend == "cupy"
