"""GPU kernels with a PyTorch reference for each: CuPy RawModule (NVRTC) sources in kernels_cu/.

    from workbench.kernels import sparse_decode_attention
    out = sparse_decode_attention(q, k, v, indices, lengths)          # backend="auto"
    ref = sparse_decode_attention(q, k, v, indices, lengths, backend="reference")

"auto" runs the CUDA kernel when the tensors are on a CUDA device and CuPy is installed (workbench[gpu]),
else the reference; see workbench.kernels.dispatch for the exact rules.
"""
from workbench.kernels.bpe_pair_counts import (
    PairCounts,
    bpe_pair_counts,
    bpe_pair_counts_cupy,
    bpe_pair_counts_reference,
)
from workbench.kernels.cupy_module import cupy_available, cupy_unavailable_reason
from workbench.kernels.dispatch import (
    BACKENDS,
    BackendUnavailableError,
    Decision,
    KernelFallbackWarning,
    KernelOp,
    decide,
    dispatch,
    get_op,
    list_ops,
    register,
)
from workbench.kernels.quest_pages import quest_page_bounds, quest_page_scores
from workbench.kernels.rejection_sampling import (
    RejectionSample,
    rejection_sampling,
    rejection_sampling_cupy,
    rejection_sampling_reference,
)
from workbench.kernels.sparse_decode_attention import (
    sparse_decode_attention,
    sparse_decode_attention_cupy,
    sparse_decode_attention_reference,
)
from workbench.kernels.tokenselect_votes import tokenselect_votes
from workbench.kernels.topk_select import topk_select
from workbench.kernels.tree_attention import (
    tree_attention,
    tree_attention_cupy,
    tree_attention_reference,
)

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "Decision",
    "KernelFallbackWarning",
    "KernelOp",
    "PairCounts",
    "RejectionSample",
    "bpe_pair_counts",
    "bpe_pair_counts_cupy",
    "bpe_pair_counts_reference",
    "cupy_available",
    "cupy_unavailable_reason",
    "decide",
    "dispatch",
    "get_op",
    "list_ops",
    "quest_page_bounds",
    "quest_page_scores",
    "register",
    "rejection_sampling",
    "rejection_sampling_cupy",
    "rejection_sampling_reference",
    "sparse_decode_attention",
    "sparse_decode_attention_cupy",
    "sparse_decode_attention_reference",
    "tokenselect_votes",
    "topk_select",
    "tree_attention",
    "tree_attention_cupy",
    "tree_attention_reference",
]
