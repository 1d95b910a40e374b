"""Views of the sparse-attention results: `SparseGeneration.view()` and `SelectionReport.view()` (+ `.show()`).

    gen = sparse_generate(lm, "Once upon a time", "quest", budget=16, max_new_tokens=8)
    gen.view()            # a Table: KV bytes per decode step against dense, the policy and the text in the title
    gen.show()            # display it in a notebook

Both result classes' `view()` / `.show()` call these functions (their own `_repr_html_` stays the static form).
"""
from __future__ import annotations

from workbench.sparse.integration import SparseGeneration
from workbench.sparse.metrics import SelectionReport
from workbench.views.table import Table


def generation_view(gen: SparseGeneration) -> Table:
    """One row per decode step: context length, K/V rows read, bytes read (KV + metadata + indices), dense
    bytes and their ratio; the title names the policy, the overall bytes ratio and the generated text."""
    if not isinstance(gen, SparseGeneration):
        raise ValueError(f"gen: must be a SparseGeneration, got {type(gen).__name__}")  # noqa: TRY004
    rows = [{"step": s.step, "context": s.context_len, "rows read": s.rows, "kv bytes": s.kv_bytes,
             "metadata bytes": s.metadata_bytes, "index bytes": s.index_bytes, "total bytes": s.total_bytes,
             "dense bytes": s.dense_kv_bytes,
             "of dense": s.total_bytes / s.dense_kv_bytes if s.dense_kv_bytes else None} for s in gen.steps]
    params = ", ".join(f"{k}={v}" for k, v in gen.params.items())
    title = (f"{gen.policy} ({params}): {len(gen.generation.new_ids)} new tokens, "
             f"{gen.bytes_ratio:.3f} of dense KV bytes; text {gen.generation.text!r}")
    columns = ["step", "context", "rows read", "kv bytes", "metadata bytes", "index bytes", "total bytes",
               "dense bytes", "of dense"]
    return Table(rows, columns=columns, title=title)


def report_view(report: SelectionReport) -> Table:
    """The report as a two-column table (measure, value)."""
    if not isinstance(report, SelectionReport):
        raise ValueError(f"report: must be a SelectionReport, got {type(report).__name__}")  # noqa: TRY004
    rows = [{"measure": k, "value": v if isinstance(v, (int, float, str)) or v is None else str(v)}
            for k, v in report.to_dict().items()]
    return Table(rows, columns=["measure", "value"], title=f"SelectionReport: {report.policy}")
