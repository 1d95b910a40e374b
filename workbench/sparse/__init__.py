"""Sparse attention / KV selection: which cached tokens each decode step reads, at what quality and cost.

    from workbench.sparse import get_selector, LayerState, evaluate_selection
    sel = get_selector("quest", budget=64, page_size=16)
    indices = sel.select(LayerState(query, keys))         # [B, H_kv, K] per KV head
    report = evaluate_selection(sel, query, keys, values)  # recall, output error, bytes, speedup bound
    gen = sparse_generate(lm, "prompt", "h2o", budget=64)  # generation whose decode steps read only the selection
    policy_perplexity(lm, ids, prefix=4096, score=64, runs=[("quest", 512)])   # quality on long text vs full KV
    needle_accuracy(lm, items, runs=[("streaming_llm", 256)])                   # passkey retrieval
"""
from workbench.sparse import policies  # noqa: F401  (registers the built-in policies)
from workbench.sparse.budget import Budget
from workbench.sparse.integration import (
    SparseAttention,
    SparseGeneration,
    StepCost,
    sparse_generate,
)
from workbench.sparse.metrics import (
    SelectionReport,
    dense_kv_bytes,
    evaluate_selection,
    mass_recall,
    normalized_recall,
    oracle_mass_recall,
    output_error,
    selected_kv_bytes,
    speedup_bound,
)
from workbench.sparse.needle import (
    NeedleItem,
    NeedleResult,
    make_needle_item,
    needle_accuracy,
)
from workbench.sparse.perplexity import PerplexityResult, policy_perplexity
from workbench.sparse.prefill import DensePrefill, decode, dense_prefill, start_policies
from workbench.sparse.ranking import PAD
from workbench.sparse.reference import (
    attention_probs,
    dense_attention,
    repeat_kv,
    sparse_attention,
)
from workbench.sparse.registry import SELECTORS, get_selector, register_selector
from workbench.sparse.selector import LayerState, Selector

__all__ = [
    "PAD",
    "SELECTORS",
    "Budget",
    "DensePrefill",
    "LayerState",
    "NeedleItem",
    "NeedleResult",
    "PerplexityResult",
    "SelectionReport",
    "Selector",
    "SparseAttention",
    "SparseGeneration",
    "StepCost",
    "attention_probs",
    "decode",
    "dense_attention",
    "dense_kv_bytes",
    "dense_prefill",
    "evaluate_selection",
    "get_selector",
    "make_needle_item",
    "mass_recall",
    "needle_accuracy",
    "normalized_recall",
    "oracle_mass_recall",
    "output_error",
    "policy_perplexity",
    "register_selector",
    "repeat_kv",
    "selected_kv_bytes",
    "sparse_attention",
    "sparse_generate",
    "speedup_bound",
    "start_policies",
]
