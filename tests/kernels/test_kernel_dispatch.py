"""Backend choice and the op registry, on the CPU (the GPU side is in test_sparse_decode_gpu.py)."""
import importlib
import warnings

import pytest
import torch

from workbench.kernels import (
    BACKENDS,
    BackendUnavailableError,
    KernelFallbackWarning,
    KernelOp,
    cupy_module,
    decide,
    dispatch,
    get_op,
    list_ops,
    sparse_decode_attention,
    sparse_decode_attention_cupy,
    sparse_decode_attention_reference,
)
from workbench.kernels.sparse_decode_attention import (
    HEADS_PER_BLOCK,
    KERNEL_DTYPES,
    name_expressions,
    plan_launch,
)

OP = "sparse_decode_attention"
# The module, not the function `dispatch` that the package exports under the same name.
dispatch_module = importlib.import_module("workbench.kernels.dispatch")


def test_sparse_decode_attention_is_registered_with_its_source_and_instantiations():
    assert OP in list_ops()
    op = get_op(OP)
    assert op.source == OP and cupy_module.source_path(OP).name == "sparse_decode_attention.cu"
    assert len(op.instantiations) == len(set(op.instantiations)) == 3 * (3 * 4 + 1)
    for dtype in KERNEL_DTYPES:
        assert set(name_expressions(dtype)) <= set(op.instantiations)


def test_unknown_op_lists_the_registered_ones():
    with pytest.raises(ValueError, match=f"unknown kernel op 'nope'.*{OP}"):
        dispatch("nope")


@pytest.mark.parametrize("backend", ["gpu", "CUPY", ""])
def test_bad_backend_lists_the_allowed_values(case_factory, backend):
    case = case_factory()
    with pytest.raises(ValueError, match=r"backend must be one of \['auto', 'reference', 'cupy'\]"):
        sparse_decode_attention(*case.args(), backend=backend)


def test_backend_from_the_environment(case_factory, monkeypatch):
    case = case_factory()
    monkeypatch.setenv("WORKBENCH_KERNEL_BACKEND", "cupy")
    with pytest.raises(BackendUnavailableError):
        sparse_decode_attention(*case.args())
    assert sparse_decode_attention(*case.args(), backend="reference").shape == case.q.shape  # argument wins
    monkeypatch.setenv("WORKBENCH_KERNEL_BACKEND", "fast")
    with pytest.raises(ValueError, match=r"WORKBENCH_KERNEL_BACKEND must be one of .*got 'fast'"):
        sparse_decode_attention(*case.args())


def test_auto_on_cpu_chooses_the_reference(case_factory):
    case = case_factory(ragged=True)
    decision = decide(OP, *case.args())
    assert decision.backend == "reference" and "CPU" in decision.reason
    assert decision.to_dict() == {"op": OP, "backend": "reference", "reason": decision.reason}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the plain CPU path warns about nothing
        out = sparse_decode_attention(*case.args(), backend="auto")
    torch.testing.assert_close(out, sparse_decode_attention_reference(*case.args()), rtol=0, atol=0)


def test_forcing_cupy_on_cpu_tensors_raises_instead_of_falling_back(case_factory):
    case = case_factory()
    with pytest.raises(BackendUnavailableError, match="backend='cupy' cannot run 'sparse_decode_attention'"):
        sparse_decode_attention(*case.args(), backend="cupy")
    with pytest.raises(BackendUnavailableError, match="sparse_decode_attention_cupy cannot run"):
        sparse_decode_attention_cupy(*case.args())


def test_validation_comes_before_the_backend_check(case_factory):
    case = case_factory()
    with pytest.raises(ValueError, match="H=5 must be a multiple of KV heads H_kv=2"):
        sparse_decode_attention(case.q[:, :5], case.k, case.v, case.indices, backend="cupy")


@pytest.fixture
def toy_op(monkeypatch):
    """A registered op whose 'kernel' handles float32 only, on a pretend GPU with CuPy present."""
    calls = []

    def validate(x):
        if x.ndim != 1:
            raise ValueError("x must be 1-D")

    def supports(x):
        return None if x.dtype == torch.float32 else f"dtype {x.dtype}"

    op = KernelOp("toy_double", reference=lambda x: 2 * x, validate=validate,
                  launcher=lambda x: calls.append("kernel") or 2 * x + 0, supports=supports)
    monkeypatch.setitem(dispatch_module._REGISTRY, op.name, op)
    monkeypatch.setattr(dispatch_module, "_on_cuda", lambda args, kwargs: True)
    monkeypatch.setattr(dispatch_module, "cupy_unavailable_reason", lambda: None)
    return op, calls


def test_kernel_runs_when_it_covers_the_call(toy_op):
    op, calls = toy_op
    assert decide(op.name, torch.ones(3)).backend == "cupy"
    assert dispatch(op.name, torch.ones(3)).tolist() == [2.0, 2.0, 2.0] and calls == ["kernel"]
    assert dispatch(op.name, torch.ones(3), backend="reference").tolist() == [2.0] * 3 and calls == ["kernel"]


@pytest.mark.parametrize("backend", ["auto", "cupy"])
def test_a_dtype_the_kernel_lacks_falls_back_to_the_reference_with_a_warning(toy_op, backend):
    op, calls = toy_op
    with pytest.warns(KernelFallbackWarning, match="does not cover this call.*dtype torch.float64"):
        out = dispatch(op.name, torch.ones(3, dtype=torch.float64), backend=backend)
    assert out.dtype == torch.float64 and out.tolist() == [2.0] * 3 and calls == []


def test_dispatch_validates_before_deciding(toy_op):
    op, calls = toy_op
    with pytest.raises(ValueError, match="x must be 1-D"):
        dispatch(op.name, torch.ones(2, 2))
    assert calls == []


def test_sparse_kernel_support_names_what_it_lacks(case_factory, monkeypatch):
    monkeypatch.setattr(dispatch_module, "_on_cuda", lambda args, kwargs: True)
    monkeypatch.setattr(dispatch_module, "cupy_unavailable_reason", lambda: None)
    double = case_factory(dtype=torch.float64)
    with pytest.warns(KernelFallbackWarning, match="dtype torch.float64"):
        assert decide(OP, *double.args()).backend == "reference"
    odd_dim = case_factory(head_dim=96)
    with pytest.warns(KernelFallbackWarning, match=r"head_dim 96; the kernel has \[64, 128, 256\]"):
        assert decide(OP, *odd_dim.args(), backend="cupy").backend == "reference"
    assert decide(OP, *case_factory(head_dim=128).args()).backend == "cupy"
    grad = case_factory()
    grad.q.requires_grad_(True)
    with pytest.warns(KernelFallbackWarning, match="require grad; the kernel has no backward"):
        assert decide(OP, *grad.args()).backend == "reference"
    with torch.no_grad():
        assert decide(OP, *grad.args()).backend == "cupy"


def test_the_reference_is_differentiable(case_factory):
    case = case_factory(batch=1, heads=2, kv_heads=1, seq=12, head_dim=4, list_len=5, dtype=torch.float64)
    for t in (case.q, case.k, case.v):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q, k, v: sparse_decode_attention(q, k, v, case.indices),
                                    (case.q, case.k, case.v))


def test_op_without_a_kernel_runs_the_reference_or_refuses_a_forced_cupy(monkeypatch):
    op = KernelOp("toy_ref_only", reference=lambda x: x + 1, validate=lambda x: None)
    monkeypatch.setitem(dispatch_module._REGISTRY, op.name, op)
    assert dispatch(op.name, torch.zeros(2)).tolist() == [1.0, 1.0]
    with pytest.raises(BackendUnavailableError, match="has no CuPy kernel"):
        dispatch(op.name, torch.zeros(2), backend="cupy")


def test_backends_constant():
    assert BACKENDS == ("auto", "reference", "cupy")


def test_cupy_module_reports_why_it_is_unavailable():
    reason = cupy_module.cupy_unavailable_reason()
    if not torch.cuda.is_available():
        assert reason is not None and "CuPy" in reason
    assert cupy_module.cupy_available() == (reason is None)
    with pytest.raises(FileNotFoundError, match="no CUDA source for op 'nope'"):
        cupy_module.source_path("nope")
    with pytest.raises(ValueError, match="not among the name expressions"):
        cupy_module.get_kernel(OP, torch.float32, ["a<float>"], "b<float>", torch.device("cuda", 0))
    assert cupy_module.dtype_name(torch.bfloat16) == "bfloat16"


@pytest.mark.parametrize("batch,heads,kv_heads,list_len,sms,splits", [
    (1, 9, 3, 27, 132, None), (1, 9, 3, 3330, 132, None), (4, 32, 8, 4096, 132, None),
    (1, 14, 2, 1110, 132, None), (2, 6, 2, 61, 132, 3), (1, 24, 1, 61, 8, 61), (64, 8, 8, 100, 132, None),
])
def test_launch_plan_covers_every_head_and_list_entry(batch, heads, kv_heads, list_len, sms, splits):
    plan = plan_launch(batch, heads, kv_heads, list_len, sms, splits)
    group = heads // kv_heads
    assert plan.heads_per_block in HEADS_PER_BLOCK
    assert plan.heads_per_block >= min(group, 8) and plan.group_blocks * plan.heads_per_block >= group
    assert (plan.group_blocks - 1) * plan.heads_per_block < group  # no block without a head
    assert plan.num_splits * plan.chunk >= list_len > (plan.num_splits - 1) * plan.chunk
    assert plan.grid == (plan.num_splits, kv_heads * plan.group_blocks, batch)
    assert plan.merge_grid == ((heads, batch, 1) if plan.num_splits > 1 else None)
    if splits is not None:
        assert plan.num_splits == splits
    else:  # enough blocks to fill the GPU unless the lists are too short to split further
        blocks = plan.grid[0] * plan.grid[1] * plan.grid[2]
        assert blocks >= 3 * sms or plan.chunk <= 80


def test_launch_plan_refuses_a_bad_split_count():
    with pytest.raises(ValueError, match=r"num_splits must lie in \[1, K=10\]"):
        plan_launch(1, 2, 1, 10, num_splits=11)
