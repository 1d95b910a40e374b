"""The PyTorch reference of sparse decode attention against brute-force dense attention with a mask."""
import math

import numpy as np
import pytest
import torch

from workbench.kernels import sparse_decode_attention, sparse_decode_attention_reference


@pytest.mark.parametrize("list_len", [27, 61, 1110, 3330])
@pytest.mark.parametrize("heads,kv_heads", [(6, 2), (9, 3), (4, 4), (8, 1)])
def test_reference_matches_dense_masked_attention(case_factory, bruteforce, list_len, heads, kv_heads):
    case = case_factory(batch=2, heads=heads, kv_heads=kv_heads, seq=list_len + 17, head_dim=16,
                        list_len=list_len, seed=list_len + heads)
    out = sparse_decode_attention_reference(*case.args())
    assert out.shape == case.q.shape and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), bruteforce(case), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("list_len", [27, 61, 1110])
def test_ragged_lengths_use_only_the_prefix_and_empty_lists_give_zero(case_factory, bruteforce, list_len):
    case = case_factory(batch=3, heads=6, kv_heads=2, seq=list_len + 5, head_dim=32, list_len=list_len,
                        ragged=True, seed=7)
    assert case.lengths.min() == 0 and case.lengths.max() == list_len
    out = sparse_decode_attention_reference(*case.args())
    torch.testing.assert_close(out.double(), bruteforce(case), rtol=1e-5, atol=1e-6)
    empty = (case.lengths == 0).repeat_interleave(3, dim=1)  # [B, H]: heads reading an empty list
    assert torch.all(out[empty] == 0)


def test_entries_past_the_length_are_never_read(case_factory):
    case = case_factory(batch=1, heads=2, kv_heads=1, seq=50, list_len=20, ragged=False)
    lengths = torch.tensor([[12]])
    padded = case.indices.clone()
    padded[..., 12:] = -1  # padding outside [0, S): must be ignored, not rejected
    a = sparse_decode_attention_reference(case.q, case.k, case.v, padded, lengths)
    b = sparse_decode_attention_reference(case.q, case.k, case.v, case.indices[..., :12])
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_duplicated_positions_count_with_their_multiplicity(case_factory, bruteforce):
    case = case_factory(batch=1, heads=4, kv_heads=2, seq=30, head_dim=8, list_len=10, seed=3)
    case.indices[0, 0, 5:] = case.indices[0, 0, 0]  # position repeated 6 times in head group 0
    out = sparse_decode_attention_reference(*case.args())
    torch.testing.assert_close(out.double(), bruteforce(case), rtol=1e-5, atol=1e-6)


def test_one_position_returns_its_value_row(case_factory):
    case = case_factory(batch=2, heads=4, kv_heads=2, seq=9, head_dim=8, list_len=1)
    out = sparse_decode_attention_reference(*case.args())
    for b in range(2):
        for h in range(4):
            g = h // 2
            torch.testing.assert_close(out[b, h], case.v[b, g, case.indices[b, g, 0]])


def test_scale_and_int32_indices(case_factory, bruteforce):
    case = case_factory(heads=4, kv_heads=2, seq=40, head_dim=16, list_len=27, seed=11)
    out = sparse_decode_attention_reference(case.q, case.k, case.v, case.indices.int(), None, 0.3)
    torch.testing.assert_close(out.double(), bruteforce(case, scale=0.3), rtol=1e-5, atol=1e-6)
    numpy_scale = sparse_decode_attention_reference(case.q, case.k, case.v, case.indices, None, np.float32(0.3))
    expected = bruteforce(case, scale=float(np.float32(0.3)))
    torch.testing.assert_close(numpy_scale.double(), expected, rtol=1e-5, atol=1e-6)
    default = sparse_decode_attention_reference(*case.args())
    explicit = sparse_decode_attention_reference(*case.args(), 1 / math.sqrt(16))
    torch.testing.assert_close(default, explicit, rtol=0, atol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1e-2), (torch.float64, 1e-12)])
def test_other_dtypes_accumulate_in_at_least_fp32(case_factory, bruteforce, dtype, tol):
    case = case_factory(heads=6, kv_heads=3, seq=80, head_dim=32, list_len=61, dtype=dtype, seed=5)
    out = sparse_decode_attention_reference(*case.args())
    assert out.dtype == dtype
    expected = bruteforce(case)  # from the same (rounded) inputs, in float64
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)


def test_non_contiguous_cache_views_give_the_same_result(case_factory):
    case = case_factory(heads=4, kv_heads=2, seq=40, head_dim=16, list_len=27)
    big_k = torch.randn(2, 2, 64, 16)
    big_v = torch.randn(2, 2, 64, 16)
    big_k[:, :, :40], big_v[:, :, :40] = case.k, case.v
    k_view, v_view = big_k[:, :, :40], big_v[:, :, :40]
    assert not k_view.is_contiguous()
    a = sparse_decode_attention_reference(case.q, k_view, v_view, case.indices)
    b = sparse_decode_attention_reference(*case.args())
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_public_function_on_cpu_equals_the_reference(case_factory):
    case = case_factory(ragged=True)
    torch.testing.assert_close(sparse_decode_attention(*case.args()), sparse_decode_attention_reference(*case.args()),
                               rtol=0, atol=0)


def _bad(case, **changes):
    args = dict(q=case.q, k=case.k, v=case.v, indices=case.indices, lengths=case.lengths)
    args.update(changes)
    return args


@pytest.mark.parametrize("change,message", [
    (lambda c: dict(q=c.q[0]), r"q must be \[B, H, D\]"),
    (lambda c: dict(k=c.k[0]), r"k must be \[B, H_kv, S, D\]"),
    (lambda c: dict(v=c.v[:, :, :5]), "v must have the shape of k"),
    (lambda c: dict(q=c.q.double()), "share one floating dtype"),
    (lambda c: dict(q=c.q[:, :, :8]), "D=8"),
    (lambda c: dict(q=c.q[:, :5]), r"H=5 must be a multiple of KV heads H_kv=2"),
    (lambda c: dict(indices=c.indices[:, :1]), r"indices must be \[B=2, H_kv=2, K\]"),
    (lambda c: dict(indices=c.indices[..., :0]), "K >= 1"),
    (lambda c: dict(indices=c.indices.float()), "indices must be int32 or int64"),
    (lambda c: dict(indices=c.indices + 64), r"indices must lie in \[0, S=64\)"),
    (lambda c: dict(lengths=torch.tensor([1, 2])), r"lengths must be a \[B=2, H_kv=2\]"),
    (lambda c: dict(lengths=torch.full((2, 2), 28)), r"lengths must lie in \[0, K=27\]"),
    (lambda c: dict(lengths=torch.full((2, 2), 3.0)), "lengths must be int32 or int64"),
    (lambda c: dict(q=[1.0]), "q must be a torch.Tensor"),
])
def test_bad_input_is_refused_with_a_message_naming_the_argument(case_factory, change, message):
    case = case_factory(batch=2, heads=6, kv_heads=2, seq=64, head_dim=16, list_len=27)
    with pytest.raises(ValueError, match=message):
        sparse_decode_attention(**_bad(case, **change(case)))


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf"), True, "0.1"])
def test_bad_scale_is_refused(case_factory, scale):
    case = case_factory(head_dim=16)
    with pytest.raises(ValueError, match="scale must be a finite positive number"):
        sparse_decode_attention(*case.args(), scale=scale)


def test_index_error_names_the_offending_entry_and_check_can_be_skipped(case_factory):
    case = case_factory(batch=1, heads=2, kv_heads=1, seq=30, head_dim=8, list_len=5)
    case.indices[0, 0, 3] = 30
    with pytest.raises(ValueError, match=r"indices\[0, 0, 3\] = 30"):
        sparse_decode_attention(*case.args())
    case.indices[0, 0, 3] = 29
    sparse_decode_attention(*case.args(), check_indices=False)  # valid input passes with the check off
