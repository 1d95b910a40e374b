"""The tree_attention reference against a float64 brute force, its argument checks and its backend choice
on the CPU (the kernel itself: test_tree_attention_emulated.py and test_tree_attention_gpu.py)."""
import importlib
import math
import warnings

import pytest
import torch
from test_tree_attention_emulated import make_case, random_tree

from workbench.kernels import (
    BackendUnavailableError,
    KernelFallbackWarning,
    cupy_module,
    decide,
    get_op,
    tree_attention,
    tree_attention_cupy,
    tree_attention_reference,
)
from workbench.kernels.tree_attention import KERNEL_DTYPES, name_expressions

OP = "tree_attention"
dispatch_module = importlib.import_module("workbench.kernels.dispatch")


def bruteforce(q, k, v, tree_mask, scale=None):
    """Per (b, h, i): softmax over the prefix keys and the tree keys j with tree_mask[i, j], in float64 loops."""
    q, k, v = (t.double() for t in (q, k, v))
    batch, heads, nodes, head_dim = q.shape
    kv_heads, seq = k.shape[1], k.shape[2]
    prefix = seq - nodes
    scale = 1 / math.sqrt(head_dim) if scale is None else scale
    out = torch.zeros_like(q)
    for b in range(batch):
        for h in range(heads):
            g = h // (heads // kv_heads)
            for i in range(nodes):
                keys = list(range(prefix)) + [prefix + j for j in range(nodes) if tree_mask[i, j]]
                scores = torch.stack([q[b, h, i] @ k[b, g, s] for s in keys]) * scale
                weights = torch.softmax(scores, 0)
                out[b, h, i] = sum(w * v[b, g, s] for w, s in zip(weights, keys))
    return out


@pytest.mark.parametrize("seq,nodes,heads,kv_heads", [(27, 9, 6, 2), (61, 13, 4, 4), (9, 9, 3, 1), (30, 1, 2, 1)])
def test_reference_matches_the_bruteforce(seq, nodes, heads, kv_heads):
    q, k, v, mask = make_case(batch=2, heads=heads, kv_heads=kv_heads, nodes=nodes, seq=seq, head_dim=16, seed=seq)
    torch.testing.assert_close(tree_attention_reference(q, k, v, mask), bruteforce(q, k, v, mask).float(),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tree_attention_reference(q, k, v, mask, 0.3), bruteforce(q, k, v, mask, 0.3).float(),
                               rtol=1e-5, atol=1e-5)


def test_a_chain_tree_is_causal_attention_over_prefix_and_chain():
    q, k, v, _ = make_case(heads=2, kv_heads=1, nodes=6, seq=20, head_dim=16)
    chain = torch.ones(6, 6, dtype=torch.bool).tril()
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k.expand(-1, 2, -1, -1), v.expand(-1, 2, -1, -1),
        attn_mask=torch.ones(6, 20, dtype=torch.bool).tril(diagonal=14))
    torch.testing.assert_close(tree_attention(q, k, v, chain), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_reference_keeps_the_dtype_and_computes_in_at_least_fp32(dtype):
    q, k, v, mask = make_case(heads=2, kv_heads=1, nodes=5, seq=27, head_dim=16, dtype=dtype)
    out = tree_attention_reference(q, k, v, mask)
    assert out.dtype == dtype
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-2, atol=2e-3)
    torch.testing.assert_close(out.double(), bruteforce(q, k, v, mask), **tol)


def test_bad_arguments_name_the_parameter():
    q, k, v, mask = make_case(heads=6, kv_heads=2, nodes=9, seq=27, head_dim=16)
    with pytest.raises(ValueError, match=r"q must be \[B, H, N, D\]"):
        tree_attention(q[0], k, v, mask)
    with pytest.raises(ValueError, match="H=5 must be a multiple of KV heads H_kv=2"):
        tree_attention(q[:, :5], k, v, mask)
    with pytest.raises(ValueError, match=r"S >= N"):
        tree_attention(q, k[:, :, :8], v[:, :, :8], mask)
    with pytest.raises(ValueError, match=r"tree_mask must be a bool tensor \[N, N\] = \[9, 9\]"):
        tree_attention(q, k, v, mask.float())
    bad = mask.clone()
    bad[3, 3] = False
    with pytest.raises(ValueError, match=r"tree_mask\[3, 3\] is False"):
        tree_attention(q, k, v, bad)
    with pytest.raises(ValueError, match="scale must be a finite positive number"):
        tree_attention(q, k, v, mask, -1.0)
    with pytest.raises(ValueError, match="v must have the shape of k"):
        tree_attention(q, k, v[:, :, :20], mask)


def test_registered_with_its_source_and_instantiations():
    op = get_op(OP)
    assert op.source == OP and cupy_module.source_path(OP).name == "tree_attention.cu"
    assert len(op.instantiations) == len(set(op.instantiations)) == 3 * (3 * 4 + 1)
    for dtype in KERNEL_DTYPES:
        assert set(name_expressions(dtype)) <= set(op.instantiations)


def test_auto_on_cpu_runs_the_reference_and_cupy_refuses():
    q, k, v, mask = make_case(head_dim=16)
    assert decide(OP, q, k, v, mask).backend == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = tree_attention(q, k, v, mask)
    assert torch.equal(out, tree_attention_reference(q, k, v, mask))
    with pytest.raises(BackendUnavailableError, match="backend='cupy' cannot run 'tree_attention'"):
        tree_attention(q, k, v, mask, backend="cupy")
    with pytest.raises(BackendUnavailableError, match="tree_attention_cupy cannot run"):
        tree_attention_cupy(q, k, v, mask)


@pytest.mark.parametrize("backend", ["auto", "cupy"])
def test_what_the_kernel_lacks_falls_back_to_the_reference_with_a_warning(monkeypatch, backend):
    monkeypatch.setattr(dispatch_module, "_on_cuda", lambda args, kwargs: True)
    monkeypatch.setattr(dispatch_module, "cupy_unavailable_reason", lambda: None)
    q, k, v, mask = make_case(dtype=torch.float64)
    with pytest.warns(KernelFallbackWarning, match=r"dtype torch.float64; the kernel has"):
        out = tree_attention(q, k, v, mask, backend=backend)  # ran the reference (no GPU needed)
    assert out.dtype == torch.float64
    q, k, v, mask = make_case(head_dim=96)
    with pytest.warns(KernelFallbackWarning, match=r"head_dim 96; the kernel has \[64, 128, 256\]"):
        assert decide(OP, q, k, v, mask, backend=backend).backend == "reference"
    assert decide(OP, *make_case(head_dim=128), backend=backend).backend == "cupy"


def test_random_tree_masks_are_tree_masks():
    tree = random_tree(12, torch.Generator().manual_seed(0))
    mask = tree.attention_mask()
    for i in range(12):
        assert mask[i].nonzero().flatten().tolist() == sorted(tree.path(i))
